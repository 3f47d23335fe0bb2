"""Report sections of issue 18 on hand-made records: deployment cost, its edge reading, predicted
against actual time, and energy in the cost table and figure."""
import math

import pandas as pd
import pytest

from tlbench.report import data as D
from tlbench.report.sections import cost, deployment, prediction


def frame(rows):
    base = {"cell_id": "c", "dataset": "digits", "variant": "{}", "seed": 0, "label_fraction": 1.0, "status": "ok",
            "error": "", "val_acc": 0.5, "role": "transfer", "device": "cpu: Test CPU", "train_seconds": 1.0,
            "examples_per_second": 10.0, "peak_memory_mb": 1.0, "trainable_params": 10, "total_params": 100}
    return D.prepare(pd.DataFrame([{**base, "cell_id": f"c{i}", **r} for i, r in enumerate(rows)]))


POINTS = [  # backbone, strategy, accuracy, latency, params
    ("big", "finetune", 0.95, 10.0, 5e6), ("big", "linear_probe", 0.90, 10.0, 5e6),
    ("small", "linear_probe", 0.92, 2.0, 3.5e6), ("small", "finetune", 0.80, 2.5, 3.5e6)]


def deployed():
    return frame([{"backbone": b, "strategy": s, "test_acc": a, "latency_ms": lat, "deployed_params": p,
                   "deployed_bytes": 4 * p + 1000, "adapter_bytes": 4000 if s == "linear_probe" else None,
                   "throughput": 1000 / lat} for b, s, a, lat, p in POINTS])


def test_deployment_table_has_one_row_per_backbone_and_strategy():
    table = deployment.deployment_table(deployed(), ["linear_probe", "finetune"])
    assert [(r.backbone, r.strategy) for r in table.data.itertuples()] == [
        ("big", "linear_probe"), ("big", "finetune"), ("small", "linear_probe"), ("small", "finetune")]
    small_probe = table.rows[2]
    assert [c.text for c in small_probe[2:8]] == ["3.5M", "13.35", "3.9", "2.00", "500", "92.0"]
    assert table.rows[1][4].text == "–"  # no adapter file for full fine-tuning
    assert "cpu: Test CPU" in table.caption


def test_edge_reading_is_the_latency_accuracy_front():
    table = deployment.edge_table(deployed())
    readings = [row[1].text for row in table.rows]
    # small+probe is fastest at 92%; only big+finetune is more accurate (and slower); the others are beaten
    assert readings == ["small + linear_probe: 3.5M params, 2.0 ms per image on this CPU (Test CPU), 92.0%",
                        "big + finetune: 5M params, 10.0 ms per image on this CPU (Test CPU), 95.0%"]


def test_no_deployment_measured_gives_no_table():
    plain = frame([{"backbone": "b", "strategy": "s", "test_acc": 0.5}])
    assert deployment.deployment_table(plain, ["s"]) is None and deployment.edge_table(plain) is None


def test_prediction_table_sums_and_ratios():
    f = frame([{"backbone": "b", "strategy": "finetune", "test_acc": 0.5, "wall_seconds": w, "predicted_seconds": p}
               for w, p in ((10.0, 8.0), (20.0, 25.0), (5.0, None))])
    table = prediction.prediction_table(f, ["finetune"])
    total = table.data.iloc[-1]
    assert (total.cells, total.predicted_seconds, total.actual_seconds) == (2, 33.0, 30.0)
    assert total.actual_over_predicted == pytest.approx(30 / 33)
    assert total.median_abs_error_percent == pytest.approx(22.5)  # median of 20% and 25%
    assert "1 ok cell(s) had no prediction" in table.caption


def test_energy_column_marks_shared_readings_and_the_figure_uses_energy_only_when_complete(tmp_path):
    rows = [{"backbone": "b", "strategy": s, "test_acc": 0.5, "energy_joules": j, "energy_shared": sh}
            for s, j, sh in (("finetune", 100.0, True), ("finetune", 300.0, False), ("linear_probe", 10.0, False))]
    table = cost.cost_table(frame(rows), ["linear_probe", "finetune"])
    energy = table.header.index("Energy (J)")
    assert [r[energy].text for r in table.rows] == ["10", "200 *"]
    figure = cost.cost_accuracy(frame(rows), ["linear_probe", "finetune"], {}, tmp_path)
    assert "one row per cost: training time per run, trainable parameters, energy per run (log" in figure.caption
    partial = frame([*rows[:2], {**rows[2], "energy_joules": None}])
    assert ("parameters (log scale); not recorded for every point: energy per run"
            in cost.cost_accuracy(partial, ["linear_probe", "finetune"], {}, tmp_path).caption)
    assert "Energy (J)" not in cost.cost_table(frame([{**r, "energy_joules": None} for r in rows]),
                                               ["linear_probe", "finetune"]).header
    assert not math.isnan(table.data["energy_joules_mean"].iloc[0])
