"""Executors: `local` (worker processes) and `ray` (actors) give the records `inprocess` gives; a
worker killed mid-cell is replaced and its cell retried once; two runs of one suite share the store
without running a cell twice; lifecycle hooks fire once per cell in the controlling process;
`[train] compile` trains the same model."""
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tlbench.builtins.executors.local import LocalOptions, Slot, death, plan_slots

TESTS = Path(__file__).parent

SMALL = """
[suite]
name = "small"
seeds = [0, 1]
label_fractions = [1.0]

[[backbone]]
plugin = "tiny_cnn"
width = 8
input_size = 8

[[dataset]]
plugin = "digits"
image_size = 8

[[strategy]]
plugin = "finetune"
lr = 3e-3

[[strategy]]
plugin = "linear_probe"
C = [1.0]

[train]
epochs = 1
min_steps = 3
batch_size = 256
"""

FAULTS = """
[suite]
name = "faults"
seeds = [0]
label_fractions = [1.0]

[[backbone]]
plugin = "tiny_cnn"
width = 8
input_size = 8

[[dataset]]
plugin = "digits"
image_size = 8

[[strategy]]
plugin = "die"
label = "die_once"
marker = "{once}"
times = 1

[[strategy]]
plugin = "die"
label = "die_always"
marker = "{always}"
times = 99

[[strategy]]
plugin = "linear_probe"
C = [1.0]
"""


def records(results: Path) -> list[dict]:
    db = sqlite3.connect(results / "tlbench.sqlite")
    try:
        return [json.loads(r[0]) for r in db.execute("SELECT record FROM records")]
    finally:
        db.close()


def by_cell(results: Path) -> dict[str, dict]:
    rows = records(results)
    assert len({r["cell_id"] for r in rows}) == len(rows)
    return {r["cell_id"]: r for r in rows}


def hook_log(path: Path) -> list[tuple[str, int, str]]:
    return [(hook, int(pid), cell) for hook, pid, cell in (line.split() for line in path.read_text().splitlines())]


@pytest.fixture(scope="module")
def ray_cluster():
    """One light local Ray instance for the module (2 CPUs, no dashboard); the ray executor uses
    the instance its process has already joined."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield ray
    ray.shutdown()


EXECUTORS = {
    "local": ["--executor", "local", "--executor-option", "workers=2", "--executor-option", "threads=1"],
    "ray": ["--executor", "ray", "--executor-option", "threads=1"],
}


def test_local_and_ray_give_the_records_inprocess_gives_and_hooks_fire_in_the_controller(
        write_suite, cli, tmp_path, monkeypatch, request):
    path = write_suite(SMALL)
    base = cli("run", path, "--no-report", "--output", tmp_path / "inprocess")
    assert base.exit_code == 0, base.output
    expected = by_cell(tmp_path / "inprocess/small")
    assert len(expected) == 4 and {r["status"] for r in expected.values()} == {"ok"}
    for name, args in EXECUTORS.items():
        if name == "ray":
            request.getfixturevalue("ray_cluster")
        log = tmp_path / f"hooks-{name}.log"
        monkeypatch.setenv("TLBENCH_TEST_HOOK_LOG", str(log))
        result = cli("run", path, "--no-report", "--output", tmp_path / name, "--plugin", "helpers.exec_plugins",
                     *args)
        assert result.exit_code == 0, (name, result.output)
        got = by_cell(tmp_path / name / "small")
        assert set(got) == set(expected), name
        for cell_id, record in got.items():
            assert record["status"] == expected[cell_id]["status"]
            assert record["metrics"] == pytest.approx(expected[cell_id]["metrics"], abs=1e-6), (name, cell_id)
        assert {r["run"]["threads"] for r in got.values()} == {1}
        events = hook_log(log)
        assert {pid for _, pid, _ in events} == {os.getpid()}, "hooks must run in the controlling process"
        for hook in ("started", "finished"):
            cells = [cell for h, _, cell in events if h == hook]
            assert sorted(cells) == sorted(expected), (name, hook)


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_worker_killed_mid_cell_is_replaced_and_its_cell_retried_once(write_suite, cli, tmp_path, monkeypatch,
                                                                        request, executor):
    if executor == "ray":
        request.getfixturevalue("ray_cluster")
    once, always = tmp_path / "once.pids", tmp_path / "always.pids"
    path = write_suite(FAULTS.format(once=once, always=always))
    log = tmp_path / "hooks.log"
    monkeypatch.setenv("TLBENCH_TEST_HOOK_LOG", str(log))
    result = cli("run", path, "--no-report", "--plugin", "helpers.exec_plugins", *EXECUTORS[executor])
    assert result.exit_code == 1, result.output  # the cell whose worker died twice failed
    rows = records(path.parent / "results/faults")
    assert len(rows) == 3 and len({r["cell_id"] for r in rows}) == 3
    by_strategy = {r["strategy"]: r for r in rows}
    survived, doomed = by_strategy["die_once"], by_strategy["die_always"]
    assert by_strategy["linear_probe"]["status"] == "ok"
    assert survived["status"] == "ok"
    assert doomed["status"] == "failed" and "worker died twice running this cell" in doomed["error"]
    assert doomed["role"] == "transfer" and doomed["cost"]["wall_seconds"] > 0  # a full record, not a stub
    if executor == "local":
        assert "SIGKILL" in doomed["error"]
    pids_once, pids_always = once.read_text().split(), always.read_text().split()
    assert len(pids_once) == 2 and len(set(pids_once)) == 2  # died once, retried once in a fresh worker
    assert len(pids_always) == 2 and len(set(pids_always)) == 2  # died, retried once, died again: no third try
    events = hook_log(log)
    assert {pid for _, pid, _ in events} == {os.getpid()}
    for hook in ("started", "finished"):
        assert sorted(c for h, _, c in events if h == hook) == sorted(r["cell_id"] for r in rows)


def test_ctrl_c_stops_the_local_workers_and_keeps_the_finished_cells(write_suite, cli, monkeypatch):
    import multiprocessing

    from helpers import exec_plugins
    monkeypatch.setattr(exec_plugins, "_finished", [])
    monkeypatch.setenv("TLBENCH_TEST_CTRL_C_AFTER", "1")
    text = SMALL.replace('plugin = "finetune"\nlr = 3e-3', 'plugin = "nap"\nseconds = 0.5')
    path = write_suite(text)
    result = cli("run", path, "--no-report", "--plugin", "helpers.exec_plugins", *EXECUTORS["local"])
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert len(records(path.parent / "results/small")) == 1
    assert multiprocessing.active_children() == []  # no worker outlives the run
    monkeypatch.delenv("TLBENCH_TEST_CTRL_C_AFTER")
    resumed = cli("run", path, "--no-report", "--executor", "inprocess", "--plugin", "helpers.exec_plugins")
    assert resumed.exit_code == 0 and "4 cells, 3 to run" in resumed.stdout


def test_two_runs_of_one_suite_run_each_cell_once(write_suite, tmp_path):
    text = SMALL.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3, 4, 5]").replace(
        'plugin = "finetune"\nlr = 3e-3', 'plugin = "nap"\nseconds = 0.3')
    path = write_suite(text)
    log = tmp_path / "hooks.log"
    env = {**os.environ, "TLBENCH_TEST_HOOK_LOG": str(log), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    command = [str(Path(sys.executable).parent / "tlbench"), "run", str(path), "--no-report", "--plugin", "helpers.exec_plugins"]
    runs = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, out + err
    started = [cell for hook, _, cell in hook_log(log) if hook == "started"]
    stored = by_cell(path.parent / "results/small")
    assert len(stored) == 12 and {r["status"] for r in stored.values()} == {"ok"}
    assert sorted(started) == sorted(stored), "each cell started exactly once across both runs"
    assert len({pid for hook, pid, _ in hook_log(log)}) in (1, 2)


def test_compile_trains_the_same_model_within_tolerance(write_suite, cli):
    """The default torch.compile backend (inductor; on CPU it needs a C compiler): same loss curve
    and accuracy as eager. Batches of 389 divide the 1,167 training digits, so the compiled loop
    (full batches only) sees the same batches as eager."""
    text = SMALL.replace("seeds = [0, 1]", "seeds = [0]").split('[[strategy]]\nplugin = "linear_probe"')[0]
    text += "[train]\nepochs = 2\nbatch_size = 389\n"
    path = write_suite(text)
    assert cli("run", path, "--no-report").exit_code == 0
    compiled = cli("run", write_suite(text.replace("batch_size = 389", "batch_size = 389\ncompile = true")),
                   "--no-report")
    assert compiled.exit_code == 0, compiled.output
    eager, comp = sorted(records(path.parent / "results/small"), key=lambda r: "compile" in r["config"]["train"])
    assert comp["config"]["train"]["compile"] is True and comp["cost"]["compile_seconds"] > 0
    loss = lambda r: [p["loss"] for p in r["train_curve"]]  # noqa: E731
    assert len(loss(eager)) == len(loss(comp)) == 6
    assert loss(comp) == pytest.approx(loss(eager), rel=1e-4)
    for metric in ("val_acc", "test_acc"):
        assert comp["metrics"][metric] == pytest.approx(eager["metrics"][metric], abs=0.02)


def test_local_plans_one_worker_per_gpu_or_cpu_workers_sharing_the_cores():
    assert plan_slots(LocalOptions(), cpus=2, gpus=0) == [Slot("cpu", 1), Slot("cpu", 1)]
    assert plan_slots(LocalOptions(), cpus=32, gpus=0) == [Slot("cpu", 4)] * 8
    assert plan_slots(LocalOptions(workers=3), cpus=12, gpus=0) == [Slot("cpu", 4)] * 3
    assert plan_slots(LocalOptions(), cpus=16, gpus=2) == [Slot("cuda:0", 8), Slot("cuda:1", 8)]
    packed = plan_slots(LocalOptions(devices=["cuda:1"], workers_per_gpu=4, threads=2), cpus=16, gpus=2)
    assert packed == [Slot("cuda:1", 2)] * 4
    from tlbench.contract.errors import UserError
    with pytest.raises(UserError, match="has 1 visible CUDA GPU"):
        plan_slots(LocalOptions(devices=["cuda:3"]), cpus=4, gpus=1)
    assert "SIGKILL" in death(-9) and death(3) == "exit code 3"


def test_executor_options_are_checked(write_suite, cli):
    path = write_suite(SMALL)
    bad = cli("run", path, "--executor", "local", "--executor-option", "devices=['gpu0']")
    assert bad.exit_code == 2 and "devices" in bad.stderr and "cuda:N" in bad.stderr
    unknown = cli("run", path, "--executor", "local", "--executor-option", "gpus=2")
    assert unknown.exit_code == 2 and "gpus" in unknown.stderr


def _children(pid: int) -> list[int]:
    """The pids of ``pid``'s worker processes (multiprocessing's spawned children)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_local_workers_exit_at_once_when_their_controller_is_killed(write_suite, tmp_path):
    import signal
    import time

    text = SMALL.replace('plugin = "finetune"\nlr = 3e-3', 'plugin = "nap"\nseconds = 120')
    path = write_suite(text.replace("seeds = [0, 1]", "seeds = [0]"))
    log = tmp_path / "hooks.log"
    env = {**os.environ, "PYTHONPATH": str(TESTS), "TLBENCH_TEST_HOOK_LOG": str(log)}
    controller = subprocess.Popen(
        [sys.executable, "-c", "from tlbench.cli import main; main()", "run", str(path), "--no-report",
         "--plugin", "helpers.exec_plugins", "--executor", "local", "--executor-option", "workers=2", "--executor-option", "threads=1"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # the workers import torch: slow on a busy machine
        while not (log.is_file() and "napping" in log.read_text()):  # a worker is in the middle of its cell
            assert controller.poll() is None and time.monotonic() < deadline, "the run never started its cells"
            time.sleep(0.2)
        workers = _children(controller.pid)
        assert len(workers) == 2
        controller.send_signal(signal.SIGKILL)
        controller.wait()
        killed = time.monotonic()
        while any(_alive(p) for p in workers) and time.monotonic() - killed < 10:
            time.sleep(0.05)
        gone_after = time.monotonic() - killed
        assert not any(_alive(p) for p in workers), "a worker outlived its controller by 10 s"
        assert gone_after < 2.0, f"the workers took {gone_after:.1f} s to exit"
    finally:
        if controller.poll() is None:
            controller.kill()
