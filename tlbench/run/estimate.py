"""A suite's cost predicted before it runs, from the records of earlier runs on the same kind of
device (``tlbench run SUITE --dry-run``; ``--max-time`` refuses a suite predicted to take longer).

An earlier record informs a cell when it has the same backbone configuration, the same strategy
plugin and ran on the same device (the record's ``run.device``, e.g. ``cpu: x86_64`` or ``cuda:
NVIDIA H200``). From each such record: its training seconds per unit of *work* and its seconds
outside training (model building, evaluation, deployment measurement). Work is the examples a
training loop sees, ``steps`` batches cycling through ``n`` labelled examples (a record's steps
as trained, a new cell's as the loop plans them from its ``[train]`` options: its cap, times its
``budget``), or ``n`` for a strategy without a training loop (a record without ``steps``: the
linear probe, whose budget-check cell is predicted to cost what its base cell does). A cell's ``n``
comes from an earlier record of the same dataset configuration (exact at the same label fraction,
else scaled by the fraction). Predicted wall time = median outside-training seconds + median
seconds per work × the cell's work; energy = median watts (joules per wall second) of the records
that measured energy × that time. A cell with no matching record is not estimated, and counted.

The suite's wall time divides the cells' time by the concurrency of the earlier runs on the
device (all their cells' time over the union of their running intervals): two local workers run
about two cells at a time.
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from tlbench.contract.cells import Cell, canonical
from tlbench.contract.errors import UserError
from tlbench.contract.results import CellRecord


@dataclass(frozen=True)
class CellEstimate:
    cell_id: str
    seconds: float | None
    joules: float | None = None
    records: int = 0  # earlier records it rests on
    skipped: bool = False  # the cell is skipped (nothing runs): 0 seconds, left out of the summary's counts


@dataclass(frozen=True)
class SuiteEstimate:
    """Every cell's estimate, the device they are for and the concurrency of the earlier runs."""

    cells: list[CellEstimate]
    device: str
    concurrency: float = 1.0

    @property
    def estimated(self) -> list[CellEstimate]:
        return [c for c in self.cells if c.seconds is not None]

    @property
    def cell_seconds(self) -> float:
        return sum(c.seconds for c in self.estimated)

    @property
    def wall_seconds(self) -> float:
        """The suite's predicted wall time (estimated cells only)."""
        return self.cell_seconds / self.concurrency

    def seconds_of(self) -> dict[str, float]:
        return {c.cell_id: c.seconds for c in self.estimated}

    def summary(self) -> str:
        """What ``--dry-run`` prints: the total, the share estimated, energy where measured."""
        n = sum(not c.skipped for c in self.cells)
        k = sum(not c.skipped for c in self.estimated)
        if not n:
            return "predicted: nothing to run"
        if not k:
            return (f"predicted: none of the {n} cells to run (no earlier record of their backbone and strategy "
                    f"on {self.device} under the output folder)")
        line = (f"predicted: {duration(self.wall_seconds)} for {k} of {n} cells to run ({100 * k / n:.0f}% "
                f"estimated from earlier runs on {self.device}")
        if self.concurrency > 1.05:
            line += f"; {duration(self.cell_seconds)} of cell time, {self.concurrency:.1f} cells at a time"
        line += ")"
        joules = [c.joules for c in self.estimated if c.joules is not None]
        if joules:
            line += f"; energy {sum(joules) / 1e3:.1f} kJ for the {len(joules)} cells measured before"
        return line


def history(output: Path) -> list[CellRecord]:
    """The ok records of every results store under ``output`` (``output/*/tlbench.sqlite``),
    this suite's included; a store this tlbench cannot read is passed over."""
    from tlbench.run.store import Store

    records = []
    for path in sorted(Path(output).glob("*/tlbench.sqlite")):
        try:
            store = Store(path.parent, create=False)
        except UserError:  # another schema version, not a store
            continue
        try:
            records += [r for r in store.records(plan_only=False) if r.status == "ok"]
        except ValueError:  # a record this CellRecord does not validate (a development store)
            continue
        finally:
            store.close()
    return records


def estimate(cells: list[Cell], records: list[CellRecord], device: str) -> SuiteEstimate:
    """Predict every cell of ``cells`` on ``device`` from the earlier ``records`` (see the module)."""
    usable = [r for r in records if _usable(r) and r.run.get("device") == device]
    by_key: dict[tuple, list[CellRecord]] = {}
    for r in usable:
        by_key.setdefault(_key(r.config["backbone"], r.config["strategy"]["plugin"]), []).append(r)
    sizes: dict[str, list[CellRecord]] = {}
    for r in usable:
        sizes.setdefault(canonical(r.config["dataset"]), []).append(r)
    out = []
    for cell in cells:
        if cell.skip_reason:
            out.append(CellEstimate(cell.id, 0.0, skipped=True))
            continue
        matched = by_key.get(_key(cell.backbone.config(), cell.strategy.plugin), [])
        n = _examples(cell, sizes.get(canonical(cell.dataset.config()), []))
        if not matched or n is None:
            out.append(CellEstimate(cell.id, None))
            continue
        per_work = statistics.median(r.cost.train_seconds / _work(r) for r in matched)
        outside = statistics.median(max(0.0, r.cost.wall_seconds - r.cost.train_seconds) for r in matched)
        looped = any(r.steps is not None for r in matched)
        seconds = outside + per_work * work(n, cell.train.batch_size, planned(n, cell.train.model_dump()) if looped
                                            else None)
        watts = [r.cost.energy_joules / r.cost.wall_seconds for r in matched if r.cost.energy_joules is not None]
        out.append(CellEstimate(cell.id, seconds, statistics.median(watts) * seconds if watts else None,
                                len(matched)))
    return SuiteEstimate(out, device, concurrency(usable))


def work(n: int, batch: int, steps: int | None) -> float:
    """Examples a strategy sees: ``steps`` batches of a loop that cycles through ``n`` examples
    (the last batch of each epoch short), or ``n`` without a loop (``steps`` None)."""
    if steps is None:
        return float(n)
    per_epoch = math.ceil(n / batch)
    return float(steps // per_epoch * n + steps % per_epoch * batch)


def planned(n: int, train: dict) -> int:
    """The steps the training loop plans for ``n`` examples under ``[train]`` options ``train``: its
    cap, times ``budget`` (a budget-check cell costs about ``factor`` times its base cell; a cell
    with ``stop = "plateau"`` is predicted at its cap, an upper bound)."""
    from tlbench.train.engine import budgeted, planned_steps
    steps = train.get("steps") or planned_steps(n, train["batch_size"], train["epochs"], train["min_steps"])
    budget = train.get("budget", 1.0)
    return steps if budget == 1.0 else budgeted(steps, budget)


def concurrency(records: list[CellRecord]) -> float:
    """Cells at a time in the runs that made ``records``: their total wall time over the length
    of the union of their running intervals (at least 1)."""
    spans = []
    for r in records:
        end = datetime.fromisoformat(r.finished_at)
        spans.append((end - timedelta(seconds=r.cost.wall_seconds), end))
    spans.sort()
    union, cur_start, cur_end = 0.0, None, None
    for start, end in spans:
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                union += (cur_end - cur_start).total_seconds()
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        union += (cur_end - cur_start).total_seconds()
    total = sum(r.cost.wall_seconds for r in records)
    return max(1.0, total / union) if union > 0 else 1.0


def _usable(r: CellRecord) -> bool:
    c = r.cost
    return bool(c.wall_seconds and c.train_seconds and c.train_examples and r.finished_at
                and r.config.get("strategy") and r.config.get("train"))


def _key(backbone_config: dict, strategy_plugin: str) -> tuple[str, str]:
    return canonical(backbone_config), strategy_plugin


def _work(r: CellRecord) -> float:
    return work(r.cost.train_examples, r.config["train"]["batch_size"], r.steps)


def _examples(cell: Cell, records: list[CellRecord]) -> int | None:
    """The cell's labelled training examples: as an earlier cell of its dataset at its label
    fraction had them, else scaled from the largest fraction seen."""
    same = [r.cost.train_examples for r in records if r.label_fraction == cell.label_fraction]
    if same:
        return same[0]
    if not records:
        return None
    widest = max(records, key=lambda r: r.label_fraction)
    return max(1, round(widest.cost.train_examples * cell.label_fraction / widest.label_fraction))


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str) -> float:
    """``"20m"``, ``"1h30m"``, ``"90s"``, ``"45"`` (seconds) -> seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise UserError(f"--max-time {text!r}: write a duration such as 20m, 1h30m, 90s or 45 (seconds)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return 3600 * hours + 60 * minutes + seconds


def duration(seconds: float) -> str:
    """``4530`` -> ``"1h 15m"``; ``754`` -> ``"12m 34s"``; ``42.4`` -> ``"42s"``."""
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
