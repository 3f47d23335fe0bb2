"""The calibration report section (table, verdict sentences, reliability diagram) from simulated
evidence with a known truth, and the negative-transfer verdicts."""
from __future__ import annotations

import numpy as np
import pandas as pd

from test_calibration import simulate
from test_report import META, rec
from test_report_sections import built, evidence_for
from tlbench.contract.evidence import SplitEvidence
from tlbench.report import write_report
from tlbench.report import tables as T
from tlbench.report.sections.verdicts import verdict_lines


def calibration_frame(sharpen: dict[str, float], seeds: int = 5, n: int = 600,
                      old_at: float | None = None, draw: int = 0) -> tuple[pd.DataFrame, dict]:
    """Records and evidence of d1 at 10% (and at ``old_at``, evidence without ``prob_true``):
    each strategy's confidence sharpened by ``sharpen[strategy]`` (1: calibrated), every
    strategy on the same test examples; ``draw`` seeds the simulation."""
    rng = np.random.default_rng(draw)
    rows, evidence = [], {}
    for frac in [0.1] + ([old_at] if old_at else []):
        z = rng.standard_normal(n)
        for strategy, k in sharpen.items():
            for seed, e in simulate(seeds, n, k, rng, z).items():
                if frac == old_at:
                    e = SplitEvidence(e.index, e.label, e.pred, e.prob)
                r = rec("d1", strategy, frac, seed, float(e.correct.mean()))
                rows.append(r)
                evidence[r["cell_id"]] = {"test": e}
    return pd.DataFrame(rows), evidence


def test_the_calibrated_strategy_is_told_apart_from_an_over_confident_one(tmp_path):
    frame, evidence = calibration_frame({"finetune": 4.0, "lora": 1.0}, old_at=1.0)
    table, _ = built(frame, "calibration", tmp_path, evidence=evidence)
    data = table.data.set_index(["label_fraction", "strategy"])
    lora, ft = data.loc[(0.1, "lora")], data.loc[(0.1, "finetune")]
    assert lora["ece_low"] <= 0 <= lora["ece_high"] and ft["ece_low"] > 0.05   # truth: 0 and 15.5
    assert lora["ece_best"] and lora["nll_best"] and not ft["nll_best"]
    assert ft["nll"] > lora["nll"] and ft["ece_plugin"] > ft["ece"]
    assert data.loc[(1.0, "lora")][["nll", "nll_low"]].isna().all()           # never guessed
    md = T.to_markdown(table)
    assert "no NLL" in md and "| **" in md
    verdicts, _ = built(frame, "calibration_verdicts", tmp_path, evidence=evidence)
    text = dict(zip(verdicts.data["label_fraction"], verdicts.data["verdict"]))[0.1]
    assert "lora is better calibrated than finetune (NLL −" in text
    assert "lora is better calibrated than finetune (ECE −" in text


def test_calibration_sentences_say_when_a_difference_is_not_significant(tmp_path):
    # equal in truth (a draw in which lora's three seeds are not all unlucky: the tests' false
    # alarms are simulated in test_calibration.py)
    frame, evidence = calibration_frame({"finetune": 1.0, "lora": 1.0}, seeds=3, n=300,
                                        old_at=1.0, draw=1)
    verdicts, _ = built(frame, "calibration_verdicts", tmp_path, evidence=evidence)
    by_fraction = dict(zip(verdicts.data["label_fraction"], verdicts.data["verdict"]))
    assert "cannot be told apart (NLL" in by_fraction[0.1] and "not significant" in by_fraction[0.1]
    assert "lora and finetune: evidence stored without" in by_fraction[1.0]   # the suite's order
    table, _ = built(frame, "calibration", tmp_path, evidence=evidence)
    assert not table.data["ece_best"].any() and not table.data["nll_best"].any()


def test_the_section_through_the_report_and_without_evidence(tmp_path):
    frame, evidence = calibration_frame({"finetune": 2.0, "lora": 1.0}, seeds=3, n=200)
    page = write_report(frame, tmp_path, META, evidence=evidence).read_text()
    assert "Calibration: ECE and NLL" in page and "Calibration verdicts" in page
    assert (tmp_path / "report" / "tables" / "calibration.csv").exists()
    assert (tmp_path / "report" / "figures" / "fig_reliability.png").stat().st_size > 1000
    table, why = built(frame, "calibration", tmp_path)
    assert table is None and why.startswith("No calibration table")
    assert built(frame, "reliability", tmp_path) == (None, None)


def accuracy_frame(scratch, probe) -> tuple[pd.DataFrame, dict]:
    frame = pd.DataFrame([rec("d1", s, 0.3, seed, acc) for s, accs in
                          (("scratch", scratch), ("linear_probe", probe), ("dann", (.1, .1, .1)))
                          for seed, acc in enumerate(accs)])
    return frame, evidence_for(frame, 200)


def test_a_transfer_strategy_told_apart_below_scratch_is_named_negative_transfer():
    frame, evidence = accuracy_frame((.80, .82, .84), (.60, .62, .65))
    lines = [v for v in verdict_lines(frame, evidence) if v.startswith("Negative transfer")]
    # dann (role adaptation) is lower still, but is not a transfer strategy
    assert len(lines) == 1 and lines[0].startswith(
        "Negative transfer: linear_probe is below scratch on d1 · bb · 30% of the labels (−19.7 [")
    assert lines[0].endswith("points, p < 0.001 after Holm).")


def test_no_negative_transfer_sentence_when_the_difference_is_not_significant():
    frame, evidence = accuracy_frame((.80, .82, .84), (.78, .83, .82))
    lines = verdict_lines(frame, evidence)
    assert lines and not any("Negative transfer" in v for v in lines)
    frame, evidence = accuracy_frame((.60, .62, .64), (.80, .82, .84))   # transfer above: none
    assert not any("Negative transfer" in v for v in verdict_lines(frame, evidence))
