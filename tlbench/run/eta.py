"""The time left in a run, from the cells finished so far.

Cells of one suite differ by orders of magnitude (a linear probe on cached features: under a
second; fine-tuning: tens of seconds), and a run often finishes the cheap ones first, so the mean
time per finished cell badly underestimates what is left. :class:`Eta` groups cells by what
their cost depends on most (backbone and strategy plugin): a cell left is expected to take as long
as the finished cells of its group did on average (the mean of all finished cells when none of its
group has finished), and that work is turned into wall time at the rate the run has gone so far
(which accounts for several workers running at once).
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Hashable, Iterable

__all__ = ["Eta"]


class Eta:
    """``groups``: one key per cell still to run (e.g. ``(backbone, strategy)``); None when the
    cells are not known in advance (a search): then every cell counts as the mean finished one."""

    def __init__(self, total: int, groups: Iterable[Hashable] | None = None, clock=time.perf_counter):
        self.total, self.clock, self.started = total, clock, clock()
        self.left = Counter(groups) if groups is not None else None
        self.seconds: dict[Hashable, list[float]] = {}

    def finished(self, group: Hashable, seconds: float) -> None:
        """A cell of ``group`` finished after ``seconds`` of its own (its record's wall time)."""
        self.seconds.setdefault(group, []).append(seconds)
        if self.left is not None and self.left[group] > 0:
            self.left[group] -= 1

    def remaining(self) -> float | None:
        """Seconds of wall time left; None before any cell has finished."""
        done = [s for times in self.seconds.values() for s in times]
        if not done:
            return None
        mean = sum(done) / len(done)
        if self.left is None:
            work = mean * max(0, self.total - len(done))
        else:
            work = sum(n * (sum(self.seconds[g]) / len(self.seconds[g]) if g in self.seconds else mean)
                       for g, n in self.left.items())
        spent = sum(done)
        return work * (self.clock() - self.started) / spent if spent > 0 else 0.0

    def text(self) -> str:
        """``HH:MM:SS`` left, or ``?``."""
        left = self.remaining()
        return "?" if left is None else time.strftime("%H:%M:%S", time.gmtime(left))
