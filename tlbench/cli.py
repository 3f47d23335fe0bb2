"""The command line: ``tlbench run | rank | list | plugins | report``.

Exit status: 0 all cells ok (or skipped), 1 some cell failed or diverged, or the results folder or the
controller's memory failed (one line; finished cells kept), 2 a user error (one line on stderr; found
before anything trains, or by a cell: that dataset's or backbone's cells stop), 130 interrupted by
Ctrl-C or SIGTERM (finished cells kept).
"""
from __future__ import annotations

import errno
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tlbench.contract.errors import UserError, one_line_warnings
from tlbench.plugins.registry import KINDS, DuplicateName, Registry

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.plugins.host import Host
    from tlbench.plugins.listing import PluginEntry

PLURALS = {"backbones": "backbone", "datasets": "dataset", "strategies": "strategy", "executors": "executor",
           "scorers": "scorer"}
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _load_plugins(plugins: tuple[str, ...], strict: bool):
    host, registry, problems = _load_plugins_quietly(plugins, strict)
    for message in problems:
        err.print(f"warning: {message}", markup=False)
    return host, host.infos, registry


def _load_plugins_quietly(plugins: tuple[str, ...], strict: bool) -> tuple[Host, Registry, list[str]]:
    """The plugins' host, its registry and the warnings of the plugins that failed (not shown yet)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from tlbench.plugins.host import Host  # here, as every import of a command: tlbench --help stays quick
        host = Host.load(plugins, strict=strict)
        try:
            registry = host.registry
        except DuplicateName as exc:
            raise UserError(str(exc)) from None
    return host, registry, [str(w.message) for w in caught if "plugin" in str(w.message)]


plugin_option = click.option("--plugin", "plugins", multiple=True, metavar="MODULE",
                             help="also load plugins from this importable module (repeatable)")
strict_option = click.option("--strict-plugins", is_flag=True, help="a plugin that fails to load is an error")


def _parse_filters(ctx, param, items) -> dict[str, list[str]]:
    """``("strategy=lora,finetune", ...)`` -> ``{"strategy": ["lora", "finetune"]}``."""
    parsed = {}
    for item in items:
        key, sep, values = item.partition("=")
        from tlbench.plan.suite import FILTER_KEYS
        if not sep or key not in FILTER_KEYS:
            raise UserError(f"--filter {item!r}: write KEY=A,B with KEY one of {', '.join(FILTER_KEYS)}")
        parsed.setdefault(key, []).extend(v for v in values.split(",") if v)
    return parsed


def filter_option(verb: str):
    return click.option("--filter", "filters", multiple=True, metavar="KEY=A,B", callback=_parse_filters,
                        help=f"{verb} these datasets/backbones/strategies (repeatable), "
                             "e.g. --filter strategy=lora,finetune")


def _max_time(ctx, param, value: str | None) -> float | None:
    from tlbench.run.estimate import parse_duration
    return parse_duration(value) if value is not None else None


class Main(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:  # one line, even if a name in it holds a line break
            err.print(f"error: {' '.join(str(exc).splitlines())}", markup=False, soft_wrap=True)
            sys.exit(2)
        except click.UsageError as exc:  # a command's bad option or argument: one line too
            see = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            err.print(f"error: {' '.join(exc.format_message().split())}{see}", markup=False, soft_wrap=True)
            sys.exit(2)
        except MemoryError:  # of this process; a worker's is its cell's failure
            err.print("error: the tlbench controller ran out of memory; the cells finished before are stored: free "
                      "memory (fewer [executor] workers, or --filter) and run the same command again to resume",
                      markup=False)
            sys.exit(1)
        except Exception as exc:
            line = _fault(exc)
            if line is None:
                raise
            err.print(f"error: {' '.join(line.splitlines())}", markup=False, soft_wrap=True)
            sys.exit(1)


def _fault(exc: Exception) -> str | None:
    """The one line of a fault outside the user's input (a results folder that is full or turned
    read-only), or None for any other error (a bug: its traceback is shown)."""
    from tlbench.run.store import RESUME, StoreFault
    if isinstance(exc, StoreFault):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO):
        return f"{exc.filename or 'the results folder'}: {exc.strerror}; {RESUME}"
    return None


@click.group(cls=Main)
@click.version_option(package_name="tlbench")
def main():
    """Benchmark transfer-learning strategies across backbones, datasets, label budgets and seeds."""
    one_line_warnings()
    # Off a terminal (logs, CI) rich would wrap at 80 columns; $COLUMNS still wins.
    out.width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160


@main.command()
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="print the expanded plan and exit without training")
@click.option("--rerun", is_flag=True, help="run finished cells again")
@click.option("--output", metavar="DIR", help="results go to DIR/<suite name> (default from the suite: results)")
@click.option("--no-report", is_flag=True, help="skip the report at the end")
@click.option("--executor", metavar="NAME", help="run the cells with this executor instead of the suite's "
              "(inprocess, local, ray; see `tlbench list executors`)")
@click.option("--executor-option", "executor_options", multiple=True, metavar="KEY=VALUE",
              help="an option of the executor (repeatable; VALUE in TOML syntax), e.g. workers=4")
@click.option("--max-time", metavar="DURATION", callback=_max_time,
              help="refuse to start (exit 2) if the run is predicted to take longer, e.g. 20m, 1h30m "
                   "(predicted from earlier runs on this kind of device, as --dry-run prints)")
@filter_option("run only the cells of")
@plugin_option
@strict_option
def run(suite_file, dry_run, rerun, output, no_report, executor, executor_options, max_time, filters, plugins,
        strict_plugins):
    """Run every cell of SUITE_FILE not already finished."""
    from tlbench.plan.preflight import preflight
    from tlbench.run.runner import run_suite
    from tlbench.run.search import outline as search_outline
    from tlbench.run.search import run_search
    from tlbench.run.store import Store
    from tlbench.plan.suite import load_suite

    host, _, registry = _load_plugins(plugins, strict_plugins)
    suite = load_suite(suite_file, registry, output)
    executor_name, executor_config = _executor(suite, registry, executor, executor_options)
    cells = suite.select(filters) if filters else suite.cells
    store = Store(suite.results_dir) if (suite.results_dir / "tlbench.sqlite").is_file() else None
    finished = store.finished() if store and not rerun else set()
    try:  # data and weights, before the store is made or written (a UserError: exit 2)
        checked = preflight([c for c in cells if c.id not in finished], registry)
    except UserError:
        if store:
            store.close()
        raise
    outline = search_outline(suite, cells, registry) if suite.search.active else None
    predicted = None if outline else _predict(suite, [c for c in cells if c.id not in finished], executor_config)
    if dry_run:
        if not outline or outline.static:
            _print_plan(suite, outline.static if outline else cells, finished, predicted)
        for line in outline.lines if outline else []:
            out.print(line, markup=False)
        out.print(f"preflight ok: {checked.summary()}")
        if predicted:
            out.print(predicted.summary(), markup=False)
        return
    if max_time is not None:
        _check_max_time(max_time, predicted, store)
    store = store or Store(suite.results_dir)
    todo = outline.cells if outline else sum(c.id not in finished for c in cells)
    chosen = f", {len(cells)} chosen by --filter" if filters else ""
    out.print(f"suite {suite.options.name}: {len(suite.cells)} cells{chosen}, {todo} to run, "
              f"results in {suite.results_dir}")
    def finish(result) -> None:  # results.csv and the report, written before suite_finished tells trackers
        progress.bar.stop()
        if result.held_elsewhere:
            err.print(f"{result.held_elsewhere} cell(s) are being run by another tlbench run of this suite; they are "
                      "left to it (run again later to export them)", markup=False)
        csv_path, summary_path = store.export()
        _print_summary(store)
        out.print(f"results: {csv_path}  summary: {summary_path}")
        if not no_report:
            try:
                _score_run(host, suite, registry, store)
                _report(store, suite.results_dir)
            except UserError as exc:  # e.g. every cell failed: the failures below say more
                err.print(f"warning: no report: {exc}", markup=False)

    previous = signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's stop is a Ctrl-C
    try:
        with _Progress(todo, None if outline else [c for c in cells if c.id not in finished]) as progress:
            kwargs = dict(rerun=rerun, progress=progress.update, cells=cells, plugins=plugins,
                          executor=executor_name, executor_options=executor_config,
                          **({"predicted": predicted.seconds_of()} if predicted else {}))
            if outline:  # each wave is a run_suite of its own, with its lifecycle hooks
                result = run_search(suite, registry, host, store, **kwargs)
                finish(result)
            else:
                result = run_suite(suite, registry, host, store, finish=finish, **kwargs)
    finally:
        signal.signal(signal.SIGTERM, previous)
        store.close()
    if result.interrupted:
        err.print("interrupted: finished cells are stored; run the same command again to resume")
        sys.exit(130)
    if result.failures:
        err.print(f"{len(result.failures)} cell(s) failed or diverged:", markup=False)
        for r in result.failures[:20]:
            err.print(f"  {r.cell_id} {r.backbone} · {r.dataset} · {r.strategy} · "
                      f"{r.label_fraction:g} · seed {r.seed}: {r.status}: {r.error}", markup=False)
    if result.user_errors:  # a dataset or backbone that only its cells could find at fault
        for line in result.user_errors:
            err.print(f"error: {' '.join(line.splitlines())}", markup=False, soft_wrap=True)
        sys.exit(2)
    if result.failures:
        sys.exit(1)


def _executor(suite, registry, name: str | None, items: tuple[str, ...]) -> tuple[str, dict]:
    """The executor and its options: the suite's ``[suite] executor`` and ``[executor]`` table,
    or ``--executor NAME`` (its options start from its defaults) and ``--executor-option``s."""
    import tomllib

    from tlbench.plugins.executors import executor_options
    chosen = name or suite.options.executor
    options = dict(suite.executor_options) if chosen == suite.options.executor else {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--executor-option {item!r}: write KEY=VALUE, e.g. workers=4")
        try:
            options[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            options[key] = value  # a bare word: a string
    executor_options(registry, chosen, options)
    return chosen, options


def _predict(suite, cells, executor_config: dict):
    """The cells' predicted cost on the device the executor would use, from every results store
    under the suite's output folder."""
    from tlbench.train import engine
    from tlbench.run.estimate import estimate, history
    from tlbench.run.worker import device_label

    name = executor_config.get("device") or (executor_config.get("devices") or ["auto"])[0]
    return estimate(cells, history(Path(suite.options.output)), device_label(engine.resolve_device(name)))


def _check_max_time(limit: float, predicted, store) -> None:
    """Refuse (UserError, nothing started or written) a run predicted to take longer than ``limit``."""
    from tlbench.run.estimate import duration
    if predicted is None or not predicted.estimated:
        err.print("warning: --max-time: no earlier run on this kind of device to predict from; running anyway",
                  markup=False)
        return
    if predicted.wall_seconds > limit:
        if store:
            store.close()
        raise UserError(f"--max-time {duration(limit)}: the run is {predicted.summary()}; "
                        "give a larger --max-time or fewer cells (--filter)")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class _Progress:
    """A bar with cells done / total, the current cell and an ETA (:class:`tlbench.run.eta.Eta` over
    ``cells``, the cells to run where known in advance); one line per finished cell."""

    def __init__(self, total: int, cells=None):
        from tlbench.run.eta import Eta
        self.total, self.done = total, 0
        self.eta = Eta(total, None if cells is None else [_cost_group(c) for c in cells])
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"), console=out,
                            transient=True)
        self.task = self.bar.add_task("starting", total=total, eta="?")

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def update(self, event: str, cell, record) -> None:
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


def _cost_group(cell) -> tuple[str, str, float, bool]:
    """What a cell's time depends on most: its backbone, its strategy plugin, its budget (the
    budget check's re-runs train longer), whether it is skipped."""
    return cell.backbone.label, cell.strategy.plugin, cell.train.budget, bool(cell.skip_reason)


def _print_plan(suite, cells, finished: set[str], predicted=None) -> None:
    seconds = predicted.seconds_of() if predicted else {}
    table = Table(title=f"suite {suite.options.name}: {len(cells)} of {len(suite.cells)} cells")
    for col in ("cell", "backbone", "dataset", "strategy", "variant", "labels", "seed", "plan", "predicted"):
        table.add_column(col)
    for c in cells:
        plan = f"skip: {c.skip_reason}" if c.skip_reason else "done" if c.id in finished else "run"
        guess = f"{seconds[c.id]:.0f}s" if c.id in seconds and not c.skip_reason else ""
        table.add_row(c.id, c.backbone.label, c.dataset.label, c.strategy.label, c.variant,
                      f"{c.label_fraction:g}", str(c.seed), plan, guess)
    out.print(table)
    skipped = sum(bool(c.skip_reason) for c in cells)
    done = sum(c.id in finished for c in cells)
    out.print(f"{len(cells) - skipped - done} to run, {done} already done, {skipped} skipped")


def _print_summary(store) -> None:
    from tlbench.run.store import summary_table
    evidence = store.evidence()
    table = summary_table(store.frame(), evidence)
    if table.empty:
        out.print("no successful cells")
        return
    view = Table(title="test accuracy (mean over seeds [95% interval]; variant chosen on validation)")
    for col in table.columns:
        view.add_column(col)
    for row in table.itertuples(index=False):
        view.add_row(*[f"{v:g}" if isinstance(v, float) else escape(str(v)) for v in row])
    out.print(view)
    from tlbench.report.sections.verdicts import verdict_lines
    lines = verdict_lines(store.frame(), evidence)
    if lines:
        out.print("verdicts (paired tests on the shared seeds and test examples, Holm across each "
                  "row's pairs, α = 0.05):", markup=False)
        for line in lines:
            out.print(f"  {line}", markup=False)


def _score_run(plugins, suite, registry, store) -> None:
    """The transferability scores of the features the run extracted (tlbench.run.rank.score_run), so
    the report has them without ``tlbench rank``; a failure here is a warning, never the run's."""
    from tlbench.run.rank import collect_scorers, score_run
    scorers = collect_scorers(plugins)
    if not scorers:
        return
    try:
        scored = score_run(suite, registry, scorers, store)
    except Exception as exc:  # noqa: BLE001 - the scores are an extra; the report must still come
        err.print(f"warning: no transferability scores: {type(exc).__name__}: {exc}", markup=False)
        return
    if scored:
        out.print(f"transferability: {scored} backbone × dataset pair(s) scored on the run's features")


def _report(store, directory: Path, filters=None, options=None) -> Path | None:
    from tlbench.report import write_report
    meta = {"suite_name": store.meta("suite_name", directory.name), "suite_toml": store.meta("suite_toml", ""),
            "environment": store.meta("environment", {}), "tuning": store.meta("tuning", [])}
    path = write_report(store.frame(), directory, meta, filters, evidence=store.evidence(),
                        val_curves={r.cell_id: r.val_curve for r in store.records()},
                        options=options)
    out.print(f"report: {path}")
    return path


@main.command()
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", metavar="DIR", help="results go to DIR/<suite name> (default from the suite: results)")
@click.option("--device", default="auto", show_default=True, help='where to extract features: "auto", "cpu", "cuda:1", ...')
@plugin_option
@strict_option
def rank(suite_file, output, device, plugins, strict_plugins):
    """Rank the backbones of SUITE_FILE per dataset by transferability scores, before any fine-tuning."""
    from tlbench.plan.preflight import preflight
    from tlbench.run.rank import rank_backbones, rich_tables, store_scores, transferability_entries, worker_features
    from tlbench.run.store import Store
    from tlbench.plan.suite import load_suite

    host, _, registry = _load_plugins(plugins, strict_plugins)
    suite = load_suite(suite_file, registry, output)
    preflight(suite.cells, registry)  # data and weights, before any feature is extracted or stored
    scorers = list(host.records("scorer").values())
    if not scorers:
        raise UserError("no transferability scorer is installed (hook tlbench_scorers); reinstall tlbench")
    features_of = worker_features(suite, registry, device)
    frame = rank_backbones(suite, registry, features_of, scorers, labels_of=features_of.labels)
    for table in rich_tables(frame, scorers):
        out.print(table)
    suite.results_dir.mkdir(parents=True, exist_ok=True)
    csv_path = suite.results_dir / "rank.csv"
    frame.to_csv(csv_path, index=False)
    store = Store(suite.results_dir)
    try:
        store_scores(store, transferability_entries(frame, scorers))
    finally:
        store.close()
    cache = features_of.cache
    out.print(f"features: {cache.misses} extracted, {cache.hits} from the cache in {cache.directory}")
    out.print(f"ranks: {csv_path}")


@main.command(name="list")
@click.argument("kind", required=False, type=click.Choice(list(PLURALS)))
@click.option("--refresh", is_flag=True, help="load every plugin again instead of the cached listing (which "
              "tlbench rebuilds by itself when a plugin changes, but not when a package a plugin imports does)")
@plugin_option
@strict_option
def list_(kind, refresh, plugins, strict_plugins):
    """Show every registered backbone, dataset, strategy, executor and scorer with its options."""
    entries = _listing(plugins, strict_plugins, refresh)
    for k in [PLURALS[kind]] if kind else KINDS:
        out.print(f"[bold]{k} plugins[/bold]")
        for entry in (e for e in entries if e.kind == k):
            clash = (f"  [yellow]clash: {entry.name!r} is registered twice; name it {entry.key!r}[/yellow]"
                     if entry.clashes else "")
            out.print(f"  [bold]{escape(entry.key)}[/bold]  {escape(entry.help)}  [dim]({entry.source})[/dim]{clash}")
            for option in entry.options:
                default = "required" if option.default is None else f"default {option.default}"
                default += f", grid {option.grid}" if option.grid else ""
                default += f", space {option.space}" if option.space else ""
                out.print(f"      {option.name}: {escape(option.help)} [dim]({escape(default)})[/dim]",
                          highlight=False)


def _listing(plugins: tuple[str, ...], strict: bool, refresh: bool) -> list[PluginEntry]:
    """What ``tlbench list`` shows: the cached listing (tlbench.plugins.listing), else (a miss, or
    ``refresh``) the loaded plugins' (torch imported), cached unless a plugin failed to load."""
    from tlbench.plugins import listing
    key = listing.cache_key(plugins)
    entries = None if refresh else listing.load(key)
    if entries is None:
        _, registry, problems = _load_plugins_quietly(plugins, strict)
        for message in problems:
            err.print(f"warning: {message}", markup=False)
        entries = listing.entries_of(registry)
        if not problems:  # a failed plugin is tried again next time, not listed as failed from the cache
            try:
                listing.save(key, entries)
            except OSError as exc:
                err.print(f"warning: the plugin listing is not cached ({exc}); `tlbench list` loads every "
                          "plugin each time", markup=False)
    return entries


@main.command()
@plugin_option
@strict_option
def plugins(plugins, strict_plugins):
    """Show each plugin with the distribution and version that provides it."""
    _, infos, registry = _load_plugins(plugins, strict_plugins)
    table = Table()
    for col in ("plugin", "module", "distribution", "version", "provides"):
        table.add_column(col)
    for info in infos:
        provides = {k: [n for n, src in registry.sources[k].items() if src == info.name] for k in KINDS}
        table.add_row(info.name, info.module, info.distribution, info.version,
                      "; ".join(f"{k}: {', '.join(names)}" for k, names in provides.items() if names))
    out.print(table)


@main.command()
@click.argument("results_dir", type=click.Path(path_type=Path))
@filter_option("keep only")
@click.option("--baseline", metavar="STRATEGY", help="the strategy the label-savings and compute-to-accuracy "
              "tables compare with (default: those whose role is baseline, e.g. scratch)")
@click.option("--reach", type=click.FloatRange(0, 1), metavar="ACC", help="the validation accuracy (0-1) of "
              "the compute-to-accuracy table (default: 90% of the best strategy's)")
def report(results_dir, filters, baseline, reach):
    """Rebuild tables, figures and report.html from the stored results alone."""
    from tlbench.report import ReportOptions
    from tlbench.run.store import Store
    if not (results_dir / "tlbench.sqlite").is_file():
        raise UserError(f"{results_dir}: no results here (no tlbench.sqlite); run `tlbench run SUITE` first "
                        "or give the folder results/<suite name>")
    store = Store(results_dir)
    try:
        store.export()
        _report(store, results_dir, filters or None, ReportOptions(baseline=baseline, reach=reach))
    finally:
        store.close()
