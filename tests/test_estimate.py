"""The cost predicted before a run: the estimator on hand-made records with a known throughput,
and --dry-run / --max-time through the CLI."""
from datetime import datetime, timedelta, timezone

import pytest

from tlbench.run import estimate
from tlbench.plugins.host import load_registry
from tlbench.contract.results import CellRecord, Cost
from tlbench.run.store import Store
from tlbench.plan.suite import parse_suite
from tlbench.testing import tiny_suite

DEVICE = "cpu: Test CPU"


def suite_text(name: str = "s", fractions: tuple[float, ...] = (1.0,), epochs: int = 1,
               tables: dict | None = None) -> str:
    return tiny_suite([{"plugin": "finetune", "lr": 1e-3}, {"plugin": "linear_probe", "C": 1.0}],
                      suite={"name": name, "label_fractions": list(fractions)},
                      train={"epochs": epochs, "batch_size": 100}, tables=tables)


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def cells(registry, name="s", fractions=(1.0,), epochs=1):
    return parse_suite(suite_text(name, fractions, epochs), "s.toml", registry).cells


def record(cell, n, wall, train, steps, joules=None, device=DEVICE, end=None):
    end = end or datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
    return CellRecord(cell_id=cell.id, config=cell.config(), label_fraction=cell.label_fraction,
                      run={"device": device}, steps=steps, finished_at=end.isoformat(timespec="seconds"),
                      cost=Cost(wall_seconds=wall, train_seconds=train, train_examples=n, energy_joules=joules))


def test_known_throughput_gives_the_exact_prediction(registry):
    finetune, probe = cells(registry)
    # earlier: 1000 labels, one epoch of batch 100 = 10 steps = 1000 examples in 10 s, 2 s outside training
    later = datetime(2026, 12, 1, 13, 0, 0, tzinfo=timezone.utc)  # one after the other: concurrency 1
    history = [record(finetune, 1000, wall=12.0, train=10.0, steps=10, joules=120.0),
               record(probe, 1000, wall=3.0, train=2.0, steps=None, end=later)]
    new_finetune, new_probe = cells(registry, name="t", epochs=3)  # 30 steps: 3000 examples
    predicted = estimate.estimate([new_finetune, new_probe], history, DEVICE)
    by_id = {c.cell_id: c for c in predicted.cells}
    assert by_id[new_finetune.id].seconds == pytest.approx(2.0 + 30.0)
    assert by_id[new_finetune.id].joules == pytest.approx(10.0 * 32.0)  # 10 W, as measured before
    assert by_id[new_probe.id].seconds == pytest.approx(1.0 + 2.0)  # no loop: one pass, epochs do not count
    assert by_id[new_probe.id].joules is None  # no energy measured before: none predicted
    assert predicted.wall_seconds == pytest.approx(35.0)
    assert "100% estimated" in predicted.summary()


def test_label_fraction_scales_the_examples_and_the_loop_steps(registry):
    finetune, _ = cells(registry)
    history = [record(finetune, 1000, wall=12.0, train=10.0, steps=10)]
    half, _ = cells(registry, name="t", fractions=(0.5,), epochs=2)
    predicted = estimate.estimate([half], history, DEVICE)
    # 500 examples, 2 epochs of 5 batches: 1000 examples at 0.01 s each, plus 2 s
    assert predicted.cells[0].seconds == pytest.approx(12.0)


def test_a_budget_check_cell_costs_its_factor_in_training_and_a_probe_the_same(registry):
    finetune, probe = cells(registry)
    later = datetime(2026, 12, 1, 13, 0, 0, tzinfo=timezone.utc)
    history = [record(finetune, 1000, wall=12.0, train=10.0, steps=10),
               record(probe, 1000, wall=3.0, train=2.0, steps=None, end=later)]
    text = suite_text("t", tables={"budget_check": {"factor": 3}})
    planned = parse_suite(text, "t.toml", registry).cells
    assert [c.train.budget for c in planned] == [1.0, 1.0, 3.0, 3.0]
    seconds = [c.seconds for c in estimate.estimate(planned, history, DEVICE).cells]
    assert seconds == pytest.approx([12.0, 3.0, 2.0 + 30.0, 3.0])  # 30 steps in place of 10; the probe again


def test_unknown_cells_are_counted_as_not_estimated(registry):
    finetune, probe = cells(registry)
    history = [record(finetune, 1000, wall=12.0, train=10.0, steps=10),
               record(probe, 1000, wall=3.0, train=2.0, steps=None, device="cuda: Other GPU")]
    predicted = estimate.estimate([finetune, probe], history, DEVICE)
    assert [c.seconds is not None for c in predicted.cells] == [True, False]  # the probe ran elsewhere
    assert len(predicted.estimated) == 1 and "1 of 2 cells" in predicted.summary()
    nothing = estimate.estimate([finetune], [], DEVICE)
    assert nothing.estimated == [] and nothing.wall_seconds == 0 and "none of the 1" in nothing.summary()


def test_concurrency_of_the_earlier_runs_divides_the_wall_time(registry):
    finetune, _ = cells(registry)
    t0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
    # two cells of 10 s side by side, then (an hour later, another run) one alone: 30 s over 20 s
    runs = [record(finetune, 1000, 10.0, 8.0, 10, end=t0), record(finetune, 1000, 10.0, 8.0, 10, end=t0),
            record(finetune, 1000, 10.0, 8.0, 10, end=t0 + timedelta(hours=1))]
    assert estimate.concurrency(runs) == pytest.approx(1.5)
    predicted = estimate.estimate([finetune], runs, DEVICE)
    assert predicted.wall_seconds == pytest.approx(predicted.cell_seconds / 1.5)


def test_history_reads_every_store_under_the_output_folder(registry, tmp_path):
    finetune, probe = cells(registry)
    for name, rec in (("a", record(finetune, 1000, 12.0, 10.0, 10)), ("b", record(probe, 1000, 3.0, 2.0, None))):
        store = Store(tmp_path / name)
        store.put(rec)
        store.put(rec.model_copy(update={"cell_id": "failed-one", "status": "failed"}))
        store.close()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "tlbench.sqlite").write_text("not a database")
    assert sorted(r.config["strategy"]["plugin"] for r in estimate.history(tmp_path)) == ["finetune",
                                                                                          "linear_probe"]


@pytest.mark.parametrize("text, seconds", [("20m", 1200), ("1h30m", 5400), ("90s", 90), ("45", 45), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert estimate.parse_duration(text) == seconds


def test_dry_run_prints_the_prediction_and_max_time_refuses(write_suite, cli, registry):
    earlier = write_suite(suite_text("earlier"), "earlier.toml")
    from tlbench.train import engine
    from tlbench.run.worker import device_label
    here = device_label(engine.resolve_device("cpu"))
    store = Store(earlier.parent / "results" / "earlier")
    for hour, cell in enumerate(cells(registry, name="earlier")):  # one after the other
        looped = cell.strategy.plugin == "finetune"
        store.put(record(cell, 1000, wall=600.0 if looped else 60.0, train=500.0 if looped else 50.0,
                         steps=10 if looped else None, device=here,
                         end=datetime(2026, 12, 1, 12 + hour, tzinfo=timezone.utc)))
    store.close()
    suite = write_suite(suite_text("later", (0.5, 1.0)), "later.toml")
    dry = cli("run", str(suite), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "predicted: " in dry.output and "for 4 of 4 cells to run (100% estimated" in dry.output
    refused = cli("run", str(suite), "--max-time", "10m")  # 17m 25s predicted
    assert refused.exit_code == 2
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --max-time 10m 00s: the run is predicted: 17m 25s for 4 of 4")
    assert not (suite.parent / "results" / "later").exists()  # nothing started, no store made
    bad = cli("run", str(suite), "--max-time", "soon")
    assert bad.exit_code == 2 and "--max-time 'soon': write a duration" in bad.output


def test_skipped_cells_are_not_counted_as_cells_to_run(registry):
    """A text dataset beside an image backbone makes skipped cells: they take no time and the
    summary neither counts them to run nor calls them estimated."""
    from dataclasses import replace
    finetune, probe = cells(registry)
    skipped = replace(probe, skip_reason="backbone 'tiny_cnn' takes image and dataset 'd' is text")
    predicted = estimate.estimate([finetune, skipped], [], DEVICE)
    assert "none of the 1 cells" in predicted.summary()
    history = [record(finetune, 1000, wall=12.0, train=10.0, steps=10)]
    predicted = estimate.estimate([finetune, skipped], history, DEVICE)
    assert "for 1 of 1 cells to run (100% estimated" in predicted.summary()
    assert predicted.seconds_of()[skipped.id] == 0.0
