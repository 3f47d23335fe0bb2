"""The Python API (notebooks, scripts) and the steps ``tlbench run`` is made of.

:func:`run_suite` runs a suite given as a dict (the TOML's tables) or a file and returns its results;
:func:`load_results` reads a results folder; :func:`summarize` gives the accuracy table ``tlbench run``
prints, with each row's verdict. The command line's ``run`` composes the same steps (:func:`load_plugins`,
:func:`prepare`, :func:`execute`, :func:`write_outputs`), adding its printing and exit statuses.

The frames of :func:`run_suite` and :func:`load_results` name their results folder in
``frame.attrs["tlbench_results"]``: :func:`summarize` reads the cells' per-example evidence there.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlbench.contract.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from rich.console import Console

    from tlbench.contract.cells import Cell
    from tlbench.plan.preflight import Preflight
    from tlbench.plan.suite import Suite
    from tlbench.plugins.host import Host
    from tlbench.plugins.registry import Registry
    from tlbench.report import ReportOptions
    from tlbench.run.estimate import SuiteEstimate
    from tlbench.run.runner import RunResult
    from tlbench.run.search import Outline
    from tlbench.run.store import Store

__all__ = ["load_results", "run_suite", "summarize"]

#: the key of ``frame.attrs`` that names a results frame's folder
RESULTS_ATTR = "tlbench_results"
#: how a suite given as a dict is named in error messages
DICT_SUITE = "<dict>"
INTERRUPTED = "interrupted: finished cells are stored; run the same command again to resume"

SuiteSource = str | Path | Mapping[str, Any]


# -- the Python API ---------------------------------------------------------------------------------

def run_suite(suite: SuiteSource, output: str | Path | None = None, *, executor: str | None = None,
              executor_options: Mapping[str, Any] | None = None,
              filters: Mapping[str, str | Sequence[str]] | None = None, rerun: bool = False, report: bool = True,
              progress: bool = False, plugins: Sequence[str] = ()) -> pd.DataFrame:
    """Run every cell of ``suite`` (a suite file, or a dict of its tables as :func:`tomllib.load`
    gives it) not already finished, as ``tlbench run`` does, and return the results: one row per
    cell of the suite's store, the columns of ``results.csv``.

    The keywords are ``tlbench run``'s options: ``output`` (results go to ``<output>/<suite
    name>``), ``executor`` and ``executor_options`` (over the suite's ``[executor]`` table when it
    is the suite's executor), ``filters`` (``{"strategy": ["lora", "finetune"]}``), ``rerun``,
    ``report`` (False: ``--no-report``), ``plugins`` (``--plugin`` modules); ``progress`` shows the
    command line's progress bar. The store, ``results.csv``, ``summary.md`` and the report are
    written exactly as ``tlbench run`` writes them. Bad input raises :class:`tlbench.UserError`
    (nothing trained, the store untouched), with the line ``tlbench run`` prints; so does a
    dataset or backbone that only its cells found at fault (its cells stop; the others are
    stored). Failed cells are rows of status ``failed`` (and a warning); Ctrl-C raises
    ``KeyboardInterrupt`` after storing the finished cells (run again to resume).
    """
    from rich.console import Console

    from tlbench.run.store import Store

    host, registry, problems = load_plugins(plugins)
    for line in problems:
        warnings.warn(line, stacklevel=2)
    run = prepare(suite, registry, output=output, executor=executor, executor_options=executor_options,
                  filters=filters, rerun=rerun)
    bar = ProgressBar.of(run, Console()) if progress else None
    written: list[Outputs] = []

    def finish(store: Store, result: RunResult) -> None:
        if bar is not None:
            bar.bar.stop()
        written.append(write_outputs(store, host, run.suite, report))

    store = Store(run.suite.results_dir)
    try:
        with bar or contextlib.nullcontext():
            result = execute(run, host, store, plugins, bar.update if bar else None, finish)
    finally:
        store.close()
    if result.interrupted:
        raise KeyboardInterrupt(INTERRUPTED)
    notes = [held_elsewhere(result.held_elsewhere)] if result.held_elsewhere else []
    notes += written[0].problems if written else []
    if result.failures:
        notes.append(f"{len(result.failures)} cell(s) failed or diverged: see the frame's status and error columns")
    for note in notes:
        warnings.warn(note, stacklevel=2)
    if result.user_errors:
        raise UserError("; ".join(" ".join(line.splitlines()) for line in result.user_errors))
    return load_results(run.suite.results_dir)


def load_results(path: str | Path) -> pd.DataFrame:
    """The records of a results folder (or of its ``tlbench.sqlite``): one row per cell of its
    latest run's plan, the columns of ``results.csv`` (README, "Results format")."""
    store = open_store(Path(path))
    try:
        frame = store.frame()
    finally:
        store.close()
    frame.attrs[RESULTS_ATTR] = str(store.directory.resolve())
    return frame


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """The table ``tlbench run`` prints, from the same analysis: per backbone × dataset ×
    strategy × label fraction (the budget check's re-runs apart), over the variant each seed chose
    on validation: the variant most seeds chose and their share (``agreement``), ``seeds``, the
    ``mean`` and ``std`` of the test score of its ``task`` (classification: accuracy; detection:
    per-image AP; segmentation: per-image IoU), its 95% interval (``ci_low``, ``ci_high``; ``interval``
    says what it covers: ``"examples"``, seeds and test examples, or ``"seeds"`` only) and the
    ``verdict`` of its row (backbone × dataset × label fraction: the paired comparison's sentences,
    None without one). ``frame`` is one of :func:`run_suite` or :func:`load_results`, filtered as
    you like; the per-example evidence is read from its results folder (a frame without one, e.g.
    read from ``results.csv``, gets intervals over seeds only)."""
    import pandas as pd

    from tlbench.report.sections.verdicts import row_verdicts
    from tlbench.run.store import score_summaries

    evidence = _evidence(frame)
    summaries = score_summaries(frame, evidence)
    table = pd.concat([summary.assign(task=task) for task, summary in summaries.items()], ignore_index=True)
    verdicts: dict[tuple, str] = {}
    for key, sentence in row_verdicts(frame, evidence):  # a row's verdict, then any negative transfer it found
        verdicts[key] = f"{verdicts[key]} {sentence}" if key in verdicts else sentence
    table["verdict"] = [verdicts.get((r.dataset, r.backbone, r.label_fraction))
                        for r in table.itertuples(index=False)]
    return table


def _evidence(frame: pd.DataFrame) -> dict | None:
    """The per-example evidence of ``frame``'s cells, from the results folder it names (if any)."""
    directory = frame.attrs.get(RESULTS_ATTR)
    if directory is None or frame.empty:
        return None
    store = open_store(Path(directory))
    try:
        return store.evidence(frame["cell_id"])
    finally:
        store.close()


def open_store(path: Path) -> Store:
    """The store of the results folder ``path`` (or ``path`` itself, a ``tlbench.sqlite``); a folder
    without one is a UserError."""
    from tlbench.run.store import Store
    directory = path.parent if path.name == "tlbench.sqlite" else path
    if not (directory / "tlbench.sqlite").is_file():
        raise UserError(f"{path}: no results here (no tlbench.sqlite); run `tlbench run SUITE` first "
                        "or give the folder results/<suite name>")
    return Store(directory, create=False)


# -- the steps of a run -----------------------------------------------------------------------------

def load_plugins(plugins: Sequence[str] = (), strict: bool = False) -> tuple[Host, Registry, list[str]]:
    """The plugins' host, its registry and the warnings of the plugins that failed (not shown yet);
    a name two plugins register is a UserError."""
    from tlbench.plugins.host import Host
    from tlbench.plugins.registry import DuplicateName
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        host = Host.load(plugins, strict=strict)
        try:
            registry = host.registry
        except DuplicateName as exc:
            raise UserError(str(exc)) from None
    return host, registry, [str(w.message) for w in caught if "plugin" in str(w.message)]


def read_suite(suite: SuiteSource, registry: Registry, output: str | Path | None = None) -> Suite:
    """The suite of a file, or of a dict of its tables (run as its TOML text,
    :func:`tlbench.plan.suite.to_toml`, which the store keeps)."""
    from tlbench.plan.suite import load_suite, parse_suite, to_toml
    output = None if output is None else str(output)
    if isinstance(suite, Mapping):
        return parse_suite(to_toml(suite, DICT_SUITE), DICT_SUITE, registry, output)
    return load_suite(suite, registry, output)


@dataclass
class PreparedRun:
    """What ``tlbench run`` settles before anything trains or is written."""

    suite: Suite
    #: the chosen cells (``--filter``; all of the suite's without), of which the unfinished run
    cells: list[Cell]
    executor: str
    executor_options: dict[str, Any]
    #: ids of the cells the store holds finished (empty with ``rerun``)
    finished: set[str]
    checked: Preflight
    #: a ``[search]``'s waves (its cells are sampled while it runs); None for a grid
    outline: Outline | None
    #: the unfinished cells' predicted cost (None for a search)
    predicted: SuiteEstimate | None
    rerun: bool

    @property
    def todo(self) -> list[Cell]:
        return [c for c in self.cells if c.id not in self.finished]

    @property
    def todo_count(self) -> int:
        """How many cells the run will hand out (a search: as its outline plans)."""
        return self.outline.cells if self.outline else len(self.todo)


def prepare(suite: SuiteSource, registry: Registry, *, output: str | Path | None = None,
            executor: str | None = None, executor_options: Mapping[str, Any] | None = None,
            filters: Mapping[str, str | Sequence[str]] | None = None, rerun: bool = False) -> PreparedRun:
    """Read the suite, choose its executor and cells, read which are finished, check the data and
    weights of the others (:func:`tlbench.plan.preflight.preflight`) and predict their cost: every
    error of the user's input is a UserError here, before anything trains or is written."""
    from tlbench.plan.preflight import preflight
    from tlbench.plan.suite import parse_filters
    from tlbench.run.search import outline as search_outline

    suite_ = read_suite(suite, registry, output)
    name, options = executor_of(suite_, registry, executor, executor_options)
    chosen = parse_filters(f"{k}={v if isinstance(v, str) else ','.join(v)}" for k, v in (filters or {}).items())
    cells = suite_.select(chosen) if chosen else suite_.cells
    finished = _finished(suite_.results_dir, rerun)
    todo = [c for c in cells if c.id not in finished]
    checked = preflight(todo, registry)  # data and weights, before the store is made or written
    outline = search_outline(suite_, cells, registry) if suite_.search.active else None
    predicted = None if outline else predict(suite_, todo, options)
    return PreparedRun(suite_, cells, name, options, finished, checked, outline, predicted, rerun)


def executor_of(suite: Suite, registry: Registry, name: str | None,
                options: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The executor and its validated options: the suite's ``[suite] executor`` and ``[executor]``
    table, or ``name`` (its options start from its defaults), with ``options`` over them."""
    from tlbench.plugins.executors import executor_options
    chosen = name or suite.options.executor
    merged = {**(suite.executor_options if chosen == suite.options.executor else {}), **(options or {})}
    executor_options(registry, chosen, merged)
    return chosen, merged


def _finished(directory: Path, rerun: bool) -> set[str]:
    """The finished cells of the store in ``directory`` (none without one, or with ``rerun``); a
    file there that is not a tlbench store is a UserError either way."""
    from tlbench.run.store import Store
    if not (directory / "tlbench.sqlite").is_file():
        return set()
    store = Store(directory)
    try:
        return set() if rerun else store.finished()
    finally:
        store.close()


def predict(suite: Suite, cells: list[Cell], executor_options: Mapping[str, Any]) -> SuiteEstimate:
    """The cells' predicted cost on the device the executor would use, from every results store
    under the suite's output folder."""
    from tlbench.run.estimate import estimate, history
    from tlbench.run.worker import device_label
    from tlbench.train import engine

    name = executor_options.get("device") or (executor_options.get("devices") or ["auto"])[0]
    return estimate(cells, history(Path(suite.options.output)), device_label(engine.resolve_device(name)))


def execute(run: PreparedRun, host: Host, store: Store, plugins: Sequence[str] = (),
            progress: Callable[[str, Cell, Any], None] | None = None,
            finish: Callable[[Store, RunResult], None] | None = None) -> RunResult:
    """Run ``run``'s unfinished cells (a search: its waves) with its executor into ``store``, the
    suite's (the caller's to close). ``progress(event, cell, record)`` as for
    :func:`tlbench.run.runner.run_cells`; ``finish(store, result)`` once the cells are done, before
    the ``suite_finished`` hook (so that trackers log what it writes)."""
    from tlbench.run.runner import run_cells
    from tlbench.run.search import run_search

    options = dict(rerun=run.rerun, progress=progress, cells=run.cells, plugins=tuple(plugins),
                   executor=run.executor, executor_options=run.executor_options,
                   **({"predicted": run.predicted.seconds_of()} if run.predicted else {}))
    done = (lambda result: finish(store, result)) if finish else None
    if run.outline:  # each wave is a run_cells of its own, with its lifecycle hooks
        result = run_search(run.suite, host.registry, host, store, **options)
        if done:
            done(result)
        return result
    return run_cells(run.suite, host.registry, host, store, finish=done, **options)


def held_elsewhere(count: int) -> str:
    return (f"{count} cell(s) are being run by another tlbench run of this suite; they are left to it (run again "
            "later to export them)")


@dataclass
class Outputs:
    """What a finished run wrote beside its store, and the lines of what it could not."""

    results_csv: Path
    summary_md: Path
    report: Path | None = None
    #: backbone × dataset pairs given transferability scores from the run's features
    scored: int = 0
    problems: list[str] = field(default_factory=list)


def write_outputs(store: Store, host: Host, suite: Suite, report: bool = True) -> Outputs:
    """``results.csv`` and ``summary.md``; with ``report``, the transferability scores of the
    features the run extracted (:func:`tlbench.run.rank.score_run`, so that the report has them
    without ``tlbench rank``) and the report. A failure of either is a line in ``problems``, never
    the run's."""
    outputs = Outputs(*store.export())
    if report:
        outputs.scored = _score_run(host, suite, store, outputs.problems)
        try:
            outputs.report = write_store_report(store)
        except UserError as exc:  # e.g. every cell failed: the failures say more
            outputs.problems.append(f"no report: {exc}")
    return outputs


def _score_run(host: Host, suite: Suite, store: Store, problems: list[str]) -> int:
    from tlbench.run.rank import collect_scorers, score_run
    scorers = collect_scorers(host)
    if not scorers:
        return 0
    try:
        return score_run(suite, host.registry, scorers, store) or 0
    except Exception as exc:  # noqa: BLE001 - the scores are an extra; the report must still come
        problems.append(f"no transferability scores: {type(exc).__name__}: {exc}")
        return 0


def write_store_report(store: Store, filters: Mapping[str, list[str]] | None = None,
                       options: ReportOptions | None = None) -> Path:
    """The report of the store's records (``tlbench report``), written in its folder."""
    from tlbench.report import write_report
    directory = store.directory
    meta = {"suite_name": store.meta("suite_name", directory.name), "suite_toml": store.meta("suite_toml", ""),
            "environment": store.meta("environment", {}), "tuning": store.meta("tuning", [])}
    return write_report(store.frame(), directory, meta, filters, evidence=store.evidence(),
                        val_curves={r.cell_id: r.val_curve for r in store.records()}, options=options)


class ProgressBar:
    """A bar with cells done / total, the current cell and an ETA (:class:`tlbench.run.eta.Eta` over
    ``cells``, the cells to run where known in advance); one line per finished cell."""

    def __init__(self, total: int, cells: list[Cell] | None, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from tlbench.run.eta import Eta
        self.total, self.done = total, 0
        self.eta = Eta(total, None if cells is None else [_cost_group(c) for c in cells])
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"), console=console,
                            transient=True)
        self.task = self.bar.add_task("starting", total=total, eta="?")

    @classmethod
    def of(cls, run: PreparedRun, console: Console) -> ProgressBar:
        """The bar of ``run``'s cells (a search's: its outline's count, no cells known in advance)."""
        return cls(run.todo_count, None if run.outline else run.todo, console)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def update(self, event: str, cell: Cell, record) -> None:
        if event == "start":
            self.bar.update(self.task, description=cell.describe())
            return
        self.done += 1
        self.eta.finished(_cost_group(cell), record.cost.wall_seconds or 0.0)
        left = self.eta.text()
        self.bar.update(self.task, advance=1, eta=left)
        metric = record.metrics.get("test_acc")
        shown = f"test {metric:.3f}" if metric is not None else (record.error or "")[:120]
        self.bar.console.print(f"[{self.done}/{self.total}] {record.status:8s} {cell.describe()}  {shown}  "
                               f"({record.cost.wall_seconds:.1f}s, ETA {left})", markup=False)


def _cost_group(cell: Cell) -> tuple[str, str, float, bool]:
    """What a cell's time depends on most: its backbone, its strategy plugin, its budget (the
    budget check's re-runs train longer), whether it is skipped."""
    return cell.backbone.label, cell.strategy.plugin, cell.train.budget, bool(cell.skip_reason)
