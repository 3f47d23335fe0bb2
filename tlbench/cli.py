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
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tlbench.contract.errors import UserError, one_line_warnings
from tlbench.plugins.registry import KINDS

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.plugins.listing import PluginEntry

PLURALS = {"backbones": "backbone", "datasets": "dataset", "strategies": "strategy", "executors": "executor",
           "scorers": "scorer"}
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _load_plugins(plugins: tuple[str, ...], strict: bool):
    from tlbench.api import load_plugins  # here, as every import of a command: tlbench --help stays quick
    host, registry, problems = load_plugins(plugins, strict)
    for message in problems:
        err.print(f"warning: {message}", markup=False)
    return host, host.infos, registry


plugin_option = click.option("--plugin", "plugins", multiple=True, metavar="MODULE",
                             help="also load plugins from this importable module (repeatable)")
strict_option = click.option("--strict-plugins", is_flag=True, help="a plugin that fails to load is an error")


def _parse_filters(ctx, param, items) -> dict[str, list[str]]:
    from tlbench.plan.suite import parse_filters
    return parse_filters(items)


def filter_option(verb: str):
    return click.option("--filter", "filters", multiple=True, metavar="KEY=A,B", callback=_parse_filters,
                        help=f"{verb} these datasets/backbones/strategies (repeatable), "
                             "e.g. --filter strategy=lora,finetune")


def _max_time(ctx, param, value: str | None) -> float | None:
    from tlbench.run.estimate import parse_duration
    return parse_duration(value) if value is not None else None


def _parse_executor_options(ctx, param, items: tuple[str, ...]) -> dict:
    """``--executor-option KEY=VALUE``s as a dict (VALUE in TOML syntax; a bare word is a string)."""
    import tomllib

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--executor-option {item!r}: write KEY=VALUE, e.g. workers=4")
        try:
            options[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            options[key] = value  # a bare word: a string
    return options


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
              callback=_parse_executor_options,
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
    from tlbench.api import prepare

    host, _, registry = _load_plugins(plugins, strict_plugins)
    prepared = prepare(suite_file, registry, output=output, executor=executor, executor_options=executor_options,
                       filters=filters, rerun=rerun)
    if dry_run:
        _print_dry_run(prepared)
        return
    if max_time is not None:
        _check_max_time(max_time, prepared.predicted)
    from tlbench.run.store import Store
    store = Store(prepared.suite.results_dir)  # a folder that cannot be made: the one line, before any other
    try:
        chosen = f", {len(prepared.cells)} chosen by --filter" if filters else ""
        out.print(f"suite {prepared.suite.options.name}: {len(prepared.suite.cells)} cells{chosen}, "
                  f"{prepared.todo_count} to run, results in {prepared.suite.results_dir}")
        result = _execute(prepared, host, store, plugins, report=not no_report)
    finally:
        store.close()
    _exit_with(result)


def _print_dry_run(prepared) -> None:
    """The plan (or a search's outline), the preflight's summary and the predicted cost."""
    outline, cells = prepared.outline, prepared.cells
    if not outline or outline.static:
        _print_plan(prepared.suite, outline.static if outline else cells, prepared.finished, prepared.predicted)
    for line in outline.lines if outline else []:
        out.print(line, markup=False)
    out.print(f"preflight ok: {prepared.checked.summary()}")
    if prepared.predicted:
        out.print(prepared.predicted.summary(), markup=False)


def _execute(prepared, host, store, plugins: tuple[str, ...], report: bool):
    """Run the cells under the progress bar; at the end, write and print the results, the summary
    and the report (before ``suite_finished`` tells trackers). A SIGTERM is a Ctrl-C."""
    from tlbench.api import ProgressBar, execute, held_elsewhere, write_outputs

    def finish(store, result) -> None:
        progress.bar.stop()
        if result.held_elsewhere:
            err.print(held_elsewhere(result.held_elsewhere), markup=False)
        written = write_outputs(store, host, prepared.suite, report)
        _print_summary(store)
        out.print(f"results: {written.results_csv}  summary: {written.summary_md}")
        for line in written.problems:
            err.print(f"warning: {line}", markup=False)
        if written.scored:
            out.print(f"transferability: {written.scored} backbone × dataset pair(s) scored on the run's features")
        if written.report:
            out.print(f"report: {written.report}")

    previous = signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's stop is a Ctrl-C
    try:
        with ProgressBar.of(prepared, out) as progress:
            return execute(prepared, host, store, plugins, progress.update, finish)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_with(result) -> None:
    """Exit 130 when interrupted, 2 after a user error a cell found, 1 if a cell failed; each with
    its lines on stderr."""
    from tlbench.api import INTERRUPTED
    if result.interrupted:
        err.print(INTERRUPTED)
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


def _check_max_time(limit: float, predicted) -> None:
    """Refuse (UserError, nothing started or written) a run predicted to take longer than ``limit``."""
    from tlbench.run.estimate import duration
    if predicted is None or not predicted.estimated:
        err.print("warning: --max-time: no earlier run on this kind of device to predict from; running anyway",
                  markup=False)
        return
    if predicted.wall_seconds > limit:
        raise UserError(f"--max-time {duration(limit)}: the run is {predicted.summary()}; "
                        "give a larger --max-time or fewer cells (--filter)")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


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
    from tlbench.run.store import summary_tables
    from tlbench.tasks.task import get as task
    evidence = store.evidence()
    tables = {name: table for name, table in summary_tables(store.frame(), evidence).items() if not table.empty}
    if not tables:
        out.print("no successful cells")
        return
    for name, table in tables.items():
        view = Table(title=f"test {task(name).score_label} (mean over seeds [95% interval]; variant chosen on validation)")
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
            tasks = f"  [cyan]{'task' if k == 'dataset' else 'tasks'}: {', '.join(entry.tasks)}[/cyan]" \
                if entry.tasks else ""
            out.print(f"  [bold]{escape(entry.key)}[/bold]  {escape(entry.help)}{tasks}  [dim]({entry.source})[/dim]")
            if entry.clashes:
                out.print(f"      [yellow]clash: {entry.name!r} is registered twice; name it {entry.key!r}[/yellow]")
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
        from tlbench.api import load_plugins
        _, registry, problems = load_plugins(plugins, strict)
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
    from tlbench.api import open_store, write_store_report
    from tlbench.report import ReportOptions
    store = open_store(results_dir)
    try:
        store.export()
        path = write_store_report(store, filters or None, ReportOptions(baseline=baseline, reach=reach))
    finally:
        store.close()
    out.print(f"report: {path}")
