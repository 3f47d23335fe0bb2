"""The worker boundary and the controller: plain-data cell specs, claims in the store, the executor
options, declared roles, the oracle's label budget, and what a record carries of training."""
import json
import pickle
import sqlite3
import time

import pytest
import torch
from conftest import TINY
from helpers.toy_cells import ToyShiftOptions, make_ctx
from helpers.toy_cells import load as load_toy_shift

from tlbench.builtins.backbones import tiny_cnn
from tlbench.plugins.host import load_registry
from tlbench.contract.results import CellRecord
from tlbench.run.runner import RunResult, RunSession
from tlbench.run.store import Store
from tlbench.plan.suite import load_suite, parse_suite
from tlbench.contract.session import CellSpec
from tlbench.run.worker import run_cell
from tlbench.testing import tiny_suite

TINY_CNN = lambda pretrained: tiny_cnn.build(tiny_cnn.TinyCNNOptions(width=8, input_size=8), pretrained)  # noqa: E731

SHIFT = tiny_suite([{"plugin": "target_oracle", "label": "oracle-ft", "lr": 3e-3},
                    {"plugin": "dann", "lr": 3e-3, "hidden": 16}],
                   suite={"name": "shift", "label_fractions": [0.25, 1.0]},
                   train={"epochs": 1, "min_steps": 3, "batch_size": 128},
                   backbone={"plugin": "tiny_cnn", "width": 8, "input_size": 8}, dataset={"plugin": "toy-shift"})


def test_a_cell_spec_is_plain_data_and_run_cell_gives_the_inprocess_record(write_suite, cli, monkeypatch):
    path = write_suite()
    assert cli("run", path, "--no-report").exit_code == 0
    db = sqlite3.connect(path.parent / "results/tiny/tlbench.sqlite")
    stored = {r[0]: json.loads(r[1]) for r in db.execute("SELECT cell_id, record FROM records")}
    suite = load_suite(path, load_registry())
    cell = next(c for c in suite.cells if c.strategy.plugin == "finetune")
    spec = CellSpec.of(cell, measure_deployment=suite.options.measure_deployment)
    assert pickle.loads(pickle.dumps(spec)) == spec and spec.cell_id == cell.id  # plain data only
    for name in ("parse_suite", "load_suite"):  # the worker resolves nothing: the spec holds the cell
        monkeypatch.setattr(f"tlbench.plan.suite.{name}", lambda *a, **k: pytest.fail("the worker parsed a suite"))
    record = run_cell(pickle.loads(pickle.dumps(spec)), "cpu")
    assert record["cell_id"] == cell.id and record["status"] == "ok"
    assert record["metrics"] == stored[cell.id]["metrics"]  # deterministic on the CPU
    assert record["role"] == "transfer" and record["select_on"] == "val"
    curve = record["train_curve"]
    assert curve[0]["step"] == 0 and curve[-1]["step"] == 2 and "cross_entropy" in curve[0]


def test_claims_are_leases_that_keep_two_owners_apart(tmp_path):
    store = Store(tmp_path)
    assert store.claim("c1", "a", 60)
    assert store.claim("c1", "a", 60)  # renewing one's own claim
    assert not store.claim("c1", "b", 60)  # held by a live owner
    store.release("c1", "a")
    assert store.claim("c1", "b", 60)
    assert store.claim("c2", "a", -1)  # a lease that has already run out ...
    assert store.claim("c2", "b", 60)  # ... is taken over: its holder died
    store.put(CellRecord(cell_id="c3", status="ok"))
    assert not store.claim("c3", "a", 60)  # finished cells are not run again
    assert store.claim("c3", "a", 60, allow_finished=True)  # unless --rerun
    store.renew("b", 1000)
    expires = dict(store.db.execute("SELECT cell_id, expires FROM claims WHERE owner = 'b'").fetchall())
    assert min(expires.values()) > time.time() + 900
    store.release_all("b")
    assert store.db.execute("SELECT count(*) FROM claims WHERE owner = 'b'").fetchone()[0] == 0


def test_the_session_hands_out_a_workers_group_first_and_skips_cells_held_elsewhere(write_suite, tmp_path):
    text = TINY.replace('[[dataset]]\nplugin = "digits"\nimage_size = 8',
                        '[[dataset]]\nplugin = "digits"\nimage_size = 8\n\n[[dataset]]\nplugin = "digits"\n'
                        'label = "digits16"\nimage_size = 16')
    registry = load_registry()
    suite = load_suite(write_suite(text), registry)
    store = Store(tmp_path / "store")
    other = suite.cells[0]
    assert store.claim(other.id, "another run", 60)
    from tlbench.plugins.loading import plugin_manager
    result = RunResult()
    with RunSession(suite, suite.cells, registry, store, plugin_manager()[0], (), False, lambda *a: None,
                    result) as session:
        groups = {s.group for s in session.pending.values()}
        assert len(groups) == 2
        last = list(session.pending.values())[-1].group
        handed = [session.next(prefer=last) for _ in range(3)]
        assert all(s.group == last for s in handed)
        while (spec := session.next()) is not None:
            assert spec.cell_id != other.id
    assert result.held_elsewhere == 1


def test_device_is_an_executor_option_not_a_training_option(write_suite, cli):
    moved = cli("run", write_suite(TINY + 'device = "cpu"\n'), "--dry-run")
    assert moved.exit_code == 2 and "[train].device: devices are executor resources" in moved.stderr
    assert moved.stderr.count("\n") == 1
    path = write_suite(TINY.replace("[train]", '[executor]\ndevice = "cpu"\n\n[train]'))
    assert cli("run", path, "--dry-run").exit_code == 0
    bad = cli("run", path, "--dry-run", "--executor-option", "device=cpu", "--executor-option", "workers=2")
    assert bad.exit_code == 2 and "--executor inprocess.workers: unknown key; valid keys: device" in bad.stderr
    unknown = cli("run", path, "--executor", "slurm")
    assert unknown.exit_code == 2 and "unknown executor plugin 'slurm'" in unknown.stderr


def test_roles_are_declared_stored_and_the_oracle_spends_its_label_budget(write_suite, cli):
    path = write_suite(SHIFT)
    result = cli("run", path, "--no-report", "--plugin", "helpers.toy_cells")
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(path.parent / "results/shift/tlbench.sqlite")
    records = [json.loads(r[0]) for r in db.execute("SELECT record FROM records")]
    roles = {(r["strategy"], r["role"], r["select_on"]) for r in records}
    assert roles == {("oracle-ft", "oracle", "target_val"), ("dann", "adaptation", "val")}
    oracle = {r["label_fraction"]: r for r in records if r["role"] == "oracle"}
    assert oracle[0.25]["metrics"] != oracle[1.0]["metrics"]  # trained on a quarter of the target labels
    dann = next(r for r in records if r["role"] == "adaptation")
    assert {"class_loss", "domain_loss", "loss"} <= set(dann["train_curve"][-1])


def test_labelled_takes_the_cells_label_budget_of_a_split():
    ctx = make_ctx(TINY_CNN, load_toy_shift(ToyShiftOptions()), label_fraction=0.25)
    name = ctx.labelled("target_train")
    full, budget = ctx.data["target_train"], ctx.data[name]
    counts, full_counts = torch.bincount(budget.labels), torch.bincount(full.labels)
    assert torch.equal(counts, torch.ceil(full_counts * 0.25).long())
    assert ctx.labelled("target_train") == name  # made once
    assert ctx.labelled("train") == "train"  # train already is the budget
    whole = make_ctx(TINY_CNN, load_toy_shift(ToyShiftOptions()), label_fraction=1.0)
    assert whole.labelled("target_train") == "target_train"


@pytest.mark.parametrize("drop_last, sizes", [(False, [64, 64, 22]), (True, [64, 64])])
def test_batches_keep_or_drop_the_short_last_batch(drop_last, sizes):
    from tlbench.contract.values import Split
    split = Split(torch.zeros(150, 1), torch.zeros(150, dtype=torch.long))
    assert [len(y) for _, y in split.batches(64, drop_last=drop_last)] == sizes


def test_precise_bn_recomputes_running_statistics_from_the_final_weights():
    ctx = make_ctx(TINY_CNN, load_toy_shift(ToyShiftOptions()), batch_size=50)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4), torch.nn.BatchNorm1d(4))
    model[2].running_mean.fill_(100.0)  # stale statistics, as after a short schedule
    inputs = ctx.data["train"].inputs[:400].float()
    from tlbench.contract.values import Split
    ctx.data["probe"] = Split(inputs, ctx.data["train"].labels[:400])
    model.eval()
    ctx.recalibrate_batch_norm(model, "probe")
    with torch.no_grad():
        hidden = model[1](model[0](inputs))
    assert torch.allclose(model[2].running_mean, hidden.mean(0), rtol=1e-4, atol=1e-4)  # 8 equal batches
    assert model[2].momentum == 0.1 and not model.training  # restored


def test_the_tests_run_torch_on_one_thread():
    import os
    assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"


def test_a_cell_whose_options_class_is_made_at_run_time_crosses_to_worker_processes(write_suite, cli):
    """peft's methods make their option classes at run time (no importable name): the spec carries
    the options as values and the worker validates them again, so `local` runs a LoRA cell."""
    registry = load_registry()
    suite_text = tiny_suite([{"plugin": "lora", "lr": 3e-3}], suite={"executor": "local"})
    suite = parse_suite(suite_text, "s.toml", registry)
    [cell] = suite.cells
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(cell.strategy.options)  # what crossing the cell itself would need
    spec = pickle.loads(pickle.dumps(CellSpec.of(cell)))
    assert spec.resolve(lambda kind, plugin: registry.get(kind, plugin).options) == cell
    result = cli("run", write_suite(suite_text), "--executor-option", "workers=1", "--no-report")
    assert result.exit_code == 0, result.output
    assert "ok       tiny_cnn · digits · lora" in result.output
