"""Report sections: found by module, built from one input, missing with a reason; the
label-savings and compute-to-accuracy sections through ``write_report``."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from test_report import META, rec
from tlbench.contract.errors import UserError
from tlbench.contract.evidence import SplitEvidence
from tlbench.report import ReportOptions, report_input, write_report
from tlbench.report import data as D
from tlbench.report import tables as T
from tlbench.report.sections import PLACES, Section, all_sections, build_sections


def test_every_section_is_found_once_with_a_place():
    sections = all_sections()
    names = [s.name for s in sections]
    assert len(names) == len(set(names))
    for expected in ("accuracy", "ranks", "cost", "domain_shift", "transferability",
                     "label_savings", "compute_to_accuracy", "failures", "data_efficiency",
                     "cost_accuracy", "overview", "label_savings_figure"):
        assert expected in names
    assert all(s.place in PLACES and s.kind in ("table", "figure") for s in sections)
    # figures first, then the tables, each place in its own order
    places = [PLACES.index(s.place) for s in sections]
    assert places == sorted(places)


def test_build_sections_reports_why_missing():
    never = Section("never", "table", lambda inp: None, missing=lambda inp: f"none in {inp}")
    silent = Section("silent", "figure", lambda inp: None, place="figures")
    class Input:
        task = "classification"

        def __str__(self):
            return "the input"
    built = build_sections(Input(), [never, silent])
    assert [(b.output, b.why) for b in built] == [(None, "none in the input"), (None, None)]


def curve_frame() -> pd.DataFrame:
    rows = []
    for frac, accs in ((0.1, (.40, .42, .44)), (1.0, (.80, .82, .84))):
        for seed, acc in enumerate(accs):
            rows.append(rec("d1", "scratch", frac, seed, acc, val=acc))
    for frac, accs in ((0.1, (.70, .71, .72)), (1.0, (.90, .91, .92))):
        for seed, acc in enumerate(accs):
            rows.append(rec("d1", "finetune", frac, seed, acc, val=acc))
    return pd.DataFrame(rows)


def evidence_for(frame: pd.DataFrame, n: int = 100) -> dict:
    """Per-example evidence matching each record's test accuracy (the first rows correct)."""
    out = {}
    for cell, acc in zip(frame["cell_id"], frame["test_acc"]):
        correct = np.arange(n) < round(acc * n)
        out[cell] = {"test": SplitEvidence(np.arange(n, dtype=np.int32), np.zeros(n, np.int16),
                                           np.where(correct, 0, 1).astype(np.int16),
                                           np.ones(n, np.float16))}
    return out


def test_label_savings_through_the_report(tmp_path):
    frame = curve_frame()
    page = write_report(frame, tmp_path, META, evidence=evidence_for(frame))
    savings = pd.read_csv(tmp_path / "report" / "tables" / "label_savings.csv")
    row = savings[(savings["strategy"] == "finetune") & (savings["fraction"] == 0.1)].iloc[0]
    # finetune at 10%: 71%; scratch: 42% at 10%, 82% at 100% -> 10^(-1 + 29/40) of the labels
    assert row["status"] == "reached" and row["baseline"] == "scratch"
    assert row["baseline_fraction"] == pytest.approx(10 ** (-1 + 0.29 / 0.40))
    assert row["resampled"] == "seeds and test examples"
    assert row["ratio_low"] <= row["ratio"] <= row["ratio_high"]
    assert savings.loc[savings["fraction"] == 1.0, "status"].eq("beyond").all()
    md = (tmp_path / "report" / "tables" / "label_savings.md").read_text()
    assert "beyond the measured range" in md and "5.3×" in md
    assert (tmp_path / "report" / "figures" / "fig6_label_savings.png").stat().st_size > 1000
    assert "Label savings" in page.read_text()


def built(frame: pd.DataFrame, name: str, tmp_path, **kw):
    """The output of one section (None: missing) and why it is missing."""
    inp = report_input(D.prepare(frame), tmp_path, **kw)
    [section] = [s for s in all_sections() if s.name == name]
    [b] = build_sections(inp, [section])
    return b.output, b.why


def test_label_savings_baseline_option(tmp_path):
    frame = curve_frame()
    table, _ = built(frame, "label_savings", tmp_path, options=ReportOptions(baseline="finetune"))
    savings = table.data
    assert set(savings["baseline"]) == {"finetune"} and set(savings["strategy"]) == {"scratch"}
    by_fraction = savings.set_index("fraction")
    assert by_fraction.loc[0.1, "status"] == "at_or_below"      # finetune at 10% is ahead already
    # scratch at 100% (82%) = finetune at 10^(-1 + 11/20): scratch needs 2.8× more labels
    assert by_fraction.loc[1.0, "ratio"] == pytest.approx(10 ** (-1 + 0.11 / 0.20))
    assert by_fraction.loc[1.0, "sentence"].split(" [")[0].endswith("2.8× more labels")
    with pytest.raises(UserError, match="--baseline 'nope' is not a strategy"):
        built(frame, "label_savings", tmp_path, options=ReportOptions(baseline="nope"))
    table, why = built(frame[frame["strategy"] != "scratch"], "label_savings", tmp_path)
    assert table is None and why.startswith("No label-savings table or figure: no strategy with "
                                            "the role baseline")


def test_compute_to_accuracy_section(tmp_path):
    frame = curve_frame()
    curves = {}
    for cell, strategy in zip(frame["cell_id"], frame["strategy"]):
        fast = strategy == "finetune"
        curves[cell] = [{"step": s, "examples": 32 * s, "seconds": 0.1 * s,
                         "val_acc": min(0.95, (0.3 if fast else 0.03) * s)} for s in (1, 2, 5, 20)]
    table, _ = built(frame, "compute_to_accuracy", tmp_path, val_curves=curves,
                     options=ReportOptions(reach=0.6))
    data = table.data
    ft = data[(data["strategy"] == "finetune") & (data["label_fraction"] == 0.1)].iloc[0]
    sc = data[(data["strategy"] == "scratch") & (data["label_fraction"] == 0.1)].iloc[0]
    assert (ft["examples"], sc["examples"]) == (64, 640)            # 0.6 at step 2 vs step 20
    assert ft["examples_ratio"] == pytest.approx(10.0) and ft["baseline"] == "scratch"
    assert "10× fewer" in T.to_markdown(table)
    assert "Joules" not in table.header                              # no energy recorded
    table, why = built(frame, "compute_to_accuracy", tmp_path)      # no curves: the reason
    assert table is None and why.startswith("No compute-to-accuracy table")


def test_report_page_section_example_builds(tmp_path):
    """The report page's "Adding a section" module, run as written."""
    from helpers.docs import page
    readme = page("reference/report.md")
    start = readme.index("# tlbench/report/sections/seed_spread.py")
    code = readme[start:readme.index("```", start)]
    module: dict = {}
    exec(compile(code, "seed_spread.py", "exec"), module)
    [section] = module["SECTIONS"]
    [b] = build_sections(report_input(D.prepare(curve_frame()), tmp_path), [section])
    assert b.output.name == "seed_spread" and len(b.output.rows) == 4
    assert "Std" in T.to_markdown(b.output)
    one_seed = curve_frame().query("seed == 0")
    [b] = build_sections(report_input(D.prepare(one_seed), tmp_path), [section])
    assert b.output is None and b.why == "No seed spread: every setting has one seed."


def test_report_page_lists_every_section():
    """The report page's table names every section the code has: a new section module comes
    with its line there."""
    from helpers.docs import page
    part = page("reference/report.md")
    missing = [s.name for s in all_sections() if f"`{s.name}`" not in part]
    assert not missing, f"docs/reference/report.md: no line for section(s) {missing}"


def test_a_saving_is_bold_only_when_its_interval_supports_two_fold():
    from tlbench.analysis.savings import BEYOND, REACHED, LabelSaving
    from tlbench.report.sections.label_savings import savings_table
    inf = float("inf")
    at_top = LabelSaving("d", "b", "lora", "scratch", 0.3, 0.95, float("nan"), BEYOND, inf, inf, inf,
                         1.0, 0.85, 0.3, "seeds")            # beyond, but only "> 1.0×"
    far = LabelSaving("d", "b", "lora", "scratch", 0.1, 0.9, float("nan"), BEYOND, inf, inf, inf,
                      1.0, 0.85, 0.3, "seeds")               # beyond the 30% budget: > 3×
    loose = LabelSaving("d", "b", "lora", "scratch", 0.1, 0.8, 0.5, REACHED, 5.0, 1.5, 9.0,
                        0.0, 0.85, 0.3, "seeds")             # 5× at the mean, interval from 1.5×
    rows = savings_table([at_top, far, loose]).rows
    assert [r[-1].bold for r in rows] == [False, True, False]


def test_the_old_name_of_a_table_cell_still_imports_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match=r"tables\.Cell is deprecated: use TableCell"):
        from tlbench.report.tables import Cell
    assert Cell is T.TableCell


def test_data_efficiency_leaves_a_panel_without_records_empty(tmp_path):
    """A text dataset beside an image backbone (every cell of that pair skipped) leaves no summary
    for that panel: the figure hides it instead of failing."""
    frame = curve_frame()
    other = frame.assign(backbone="bb2", dataset="d2", cell_id=frame["cell_id"] + "-2")
    figure, _ = built(pd.concat([frame, other], ignore_index=True), "data_efficiency", tmp_path)
    assert figure is not None and figure.png.stat().st_size > 1000
