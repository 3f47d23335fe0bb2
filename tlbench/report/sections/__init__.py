"""The report's sections: every table and figure is one :class:`Section`, built from one
:class:`ReportInput`.

A section module in this package defines ``SECTIONS``, a list of :class:`Section`; every module
here is found and imported by :func:`all_sections`, so adding a table or a figure to the report
is one new file. Each section says what it is (``name``, ``kind``), where the page shows it
(``place``, then ``order``), how it is built (``build(inp)`` returns a
:class:`~tlbench.report.tables.Table`, a :class:`~tlbench.report.figures.FigureOut` or None
when there is nothing to show) and, when it is None, why (``missing``: a sentence for the page,
or None to leave it out silently).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

import pandas as pd

from tlbench.report.figures import FigureOut
from tlbench.report.tables import Table

if TYPE_CHECKING:
    from tlbench.contract.evidence import SplitEvidence

#: ``Section.tasks`` of a section that reads what only classification has (class probabilities,
#: the probe's features, accuracy curves, target domains)
CLASSIFICATION_ONLY = ("classification",)

#: where the page shows a section: the figures, the main tables, collapsed tables, failures
Place = Literal["figures", "tables", "details", "failures"]
PLACES: tuple[Place, ...] = ("figures", "tables", "details", "failures")


@dataclass(frozen=True)
class ReportOptions:
    """Choices a reader of the report makes (``tlbench report --baseline ... --reach ...``).

    ``baseline``: the strategy that transfer is compared against in the savings tables (default:
    the strategies whose declared role is ``baseline``, e.g. scratch). ``reach``: the validation
    accuracy (0–1) a cell must reach for the compute-to-accuracy table; default: ``reach_share``
    of the best final validation accuracy in each dataset × backbone.
    """
    baseline: str | None = None
    reach: float | None = None
    reach_share: float = 0.9


@dataclass
class ReportInput:
    """Everything a section may read: the records (prepared and filtered) of the suite's own
    cells (``frame``) and of the budget check's re-runs (``check``: budget above 1), the
    variants selected on validation and their per-seed summary, roles, the strategies in display order, which
    datasets are shift pairs, the per-example evidence (``cell_id -> split -> SplitEvidence``,
    empty when the store has none), the validation curves during training (``cell_id ->``
    points ``{step, examples, seconds, val_acc[, joules]}``, empty when none was given) and the
    output folders.

    ``task`` is the records' task (:mod:`tlbench.tasks`; a report covers one) and ``score`` its
    score: the sections read ``test_<score>`` (:attr:`test_metric`) and select on ``val_<score>``
    (:attr:`val_metric`), and call it ``score_label`` (``"accuracy"``, ``"per-image AP"``)."""
    frame: pd.DataFrame
    check: pd.DataFrame
    selected: pd.DataFrame
    summary: pd.DataFrame
    roles: dict[str, str]
    strategies: list[str]
    shift: dict[str, bool]
    evidence: Mapping[str, Mapping[str, "SplitEvidence"]]
    val_curves: Mapping[str, Sequence[Mapping[str, float]]]
    out_dir: Path
    fig_dir: Path
    tab_dir: Path
    meta: dict
    options: ReportOptions = field(default_factory=ReportOptions)
    task: str = "classification"
    score: str = "acc"
    score_label: str = "accuracy"
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def test_metric(self) -> str:
        return f"test_{self.score}"

    @property
    def val_metric(self) -> str:
        return f"val_{self.score}"

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, the same value after: for work that
        a table and a figure share."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


Output = Table | FigureOut


@dataclass(frozen=True)
class Section:
    name: str
    kind: Literal["table", "figure"]
    build: Callable[[ReportInput], Output | None]
    missing: str | Callable[[ReportInput], str | None] | None = None
    place: Place = "tables"
    order: float = 100.0
    #: the line a collapsed ("details") section is opened by; default: its output's title
    label: str = ""
    #: whether the page shows a built section (the files are written either way)
    shown: Callable[[ReportInput], bool] = lambda inp: True
    #: the tasks whose reports have it (``("any",)``: every task); e.g. calibration reads class
    #: probabilities, which only classification has
    tasks: tuple[str, ...] = ("any",)

    def why_missing(self, inp: ReportInput) -> str | None:
        return self.missing(inp) if callable(self.missing) else self.missing


@dataclass(frozen=True)
class Built:
    """One section's result: its output, or why there is none (``why`` may be None)."""
    section: Section
    output: Output | None
    why: str | None = None
    shown: bool = True


def all_sections() -> list[Section]:
    """Every section of every module in this package, by place and order; a name used twice is
    an error naming both modules."""
    found: dict[str, tuple[str, Section]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for section in getattr(module, "SECTIONS", ()):
            if section.name in found:
                raise ValueError(f"report section {section.name!r} is defined in both "
                                 f"{found[section.name][0]} and {module.__name__}")
            found[section.name] = (module.__name__, section)
    return sorted((s for _, s in found.values()),
                  key=lambda s: (PLACES.index(s.place), s.order, s.name))


def build_sections(inp: ReportInput, sections: list[Section] | None = None) -> list[Built]:
    """Build every section (default :func:`all_sections`) of the report's task in order."""
    built = []
    for section in all_sections() if sections is None else sections:
        if inp.task not in section.tasks and "any" not in section.tasks:
            continue
        output = section.build(inp)
        if output is None:
            built.append(Built(section, None, section.why_missing(inp), shown=False))
        else:
            built.append(Built(section, output, shown=section.shown(inp)))
    return built
