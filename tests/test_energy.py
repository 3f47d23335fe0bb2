"""Energy readers on recorded counter values: a fake powercap tree for RAPL, a stub pynvml
module for NVML, through the real Meter and the real worker path."""
import sys
import types

import pytest
import torch

from tlbench.testing import tiny_suite
from tlbench.train import energy


def zone(root, name, label, uj, max_uj=1_000_000_000):
    path = root / name
    path.mkdir(parents=True)
    (path / "name").write_text(label + "\n")
    (path / "energy_uj").write_text(f"{uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def set_uj(path, uj):
    (path / "energy_uj").write_text(f"{uj}\n")


@pytest.fixture
def powercap(tmp_path):
    """Two packages, a core subzone and a psys zone (neither of which may be added)."""
    root = tmp_path / "powercap"
    p0 = zone(root, "intel-rapl:0", "package-0", 500_000_000)
    p1 = zone(root, "intel-rapl:1", "package-1", 100_000_000)
    zone(root, "intel-rapl:0:0", "core", 7)
    zone(root, "intel-rapl:2", "psys", 9)
    return root, p0, p1


def test_rapl_finds_the_packages_only(powercap):
    root, _, _ = powercap
    counters = energy.RaplCounters.find(root)
    assert counters.devices == ["package-0", "package-1"]
    assert counters.wrap == [1000.0, 1000.0]
    assert counters.read() == [500.0, 100.0]


def test_rapl_absent_or_unreadable_gives_no_meter(tmp_path):
    assert energy.RaplCounters.find(tmp_path / "nothing") is None
    bad = zone(tmp_path / "pc", "intel-rapl:0", "package-0", 1)
    (bad / "energy_uj").write_text("not a number\n")
    assert energy.RaplCounters.find(tmp_path / "pc") is None
    assert energy.counters_for(torch.device("cpu"), tmp_path / "nothing") is None


def test_meter_adds_both_packages_across_a_wrap(powercap):
    root, p0, p1 = powercap
    meter = energy.Meter(energy.RaplCounters.find(root), poll_seconds=3600)
    with meter:
        set_uj(p0, 900_000_000)  # +400 J
        set_uj(p1, 150_000_000)  # +50 J
        assert meter.joules() == pytest.approx(450.0)
        set_uj(p0, 200_000_000)  # wrapped at 1000 J: +300 J
        assert meter.joules() == pytest.approx(750.0)
        set_uj(p0, 800_000_000)  # wrapped again since the last poll would be lost; polled: +600 J
        set_uj(p1, 160_000_000)  # +10 J
    reading = meter.reading
    assert reading.joules == pytest.approx(1360.0)
    assert (reading.source, reading.devices) == ("rapl", "package-0,package-1")
    assert reading.cost_fields()["energy_joules"] == pytest.approx(1360.0)


def test_rapl_shared_when_other_processes_use_the_cpu(powercap, monkeypatch):
    root, _, _ = powercap
    times = iter([(100.0, 10.0), (200.0, 100.0), (300.0, 150.0)])  # (machine busy, own) CPU seconds
    monkeypatch.setattr(energy, "_cpu_times", lambda: next(times))
    counters = energy.RaplCounters.find(root)
    assert counters.others_active() is False  # the baseline
    assert counters.others_active() is False  # 90 of 100 busy seconds were ours
    assert counters.others_active() is True  # 50 of 100 were ours


class FakeNvml(types.ModuleType):
    """What tlbench calls of pynvml, with a counter the test sets (millijoules)."""

    class NVMLError(Exception):
        pass

    def __init__(self, millijoules=1_000_000, pids=(), supported=True):
        super().__init__("pynvml")
        self.millijoules, self.pids, self.supported = millijoules, list(pids), supported

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByUUID(self, uuid):
        raise self.NVMLError("not found")

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("gpu", index)

    def nvmlDeviceGetName(self, handle):
        return b"Fake H200"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise self.NVMLError("Not Supported")
        return self.millijoules

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [types.SimpleNamespace(pid=p) for p in self.pids]


def test_nvml_meter_reads_the_gpu_counter(monkeypatch):
    import os
    nvml = FakeNvml(millijoules=5_000_000, pids=[os.getpid()])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    counters = energy.counters_for(torch.device("cuda:1"))
    assert counters.source == "nvml" and counters.devices == ["cuda:1 Fake H200"]
    meter = energy.Meter(counters, poll_seconds=3600)
    with meter:
        nvml.millijoules += 1_234_567
    assert meter.reading.joules == pytest.approx(1234.567)
    assert meter.reading.shared is False


def test_nvml_shared_when_another_process_holds_the_gpu(monkeypatch):
    import os
    nvml = FakeNvml(pids=[os.getpid()])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    meter = energy.Meter(energy.counters_for(torch.device("cuda:0")), poll_seconds=3600)
    with meter:
        nvml.pids.append(os.getpid() + 1)  # a second worker starts on the same GPU
    assert meter.reading.shared is True


def test_nvml_missing_or_unsupported_gives_no_meter(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(supported=False))
    assert energy.counters_for(torch.device("cuda:0")) is None
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: import fails
    assert energy.counters_for(torch.device("cuda:0")) is None


def test_worker_records_energy_and_curve_joules(powercap, monkeypatch, tmp_path):
    """A real cell through the worker, its package counter advancing as the cell trains."""
    from tlbench.plugins.host import load_registry
    from tlbench.plan.suite import parse_suite
    from tlbench.run.worker import Worker

    root, p0, _ = powercap
    monkeypatch.setattr(energy.RaplCounters, "find", classmethod(
        lambda cls, r=root: cls([p0])))  # one package, as on a one-socket machine
    reads = []
    real_read = energy.RaplCounters.read

    def advancing(self):  # 1 J more at every read: a counter that moves while the cell runs
        reads.append(1)
        set_uj(p0, 500_000_000 + 1_000_000 * len(reads))
        return real_read(self)

    monkeypatch.setattr(energy.RaplCounters, "read", advancing)
    registry = load_registry()
    text = tiny_suite([{"plugin": "finetune"}], suite={"name": "e"},
                      train={"epochs": 1, "min_steps": 2, "batch_size": 256})
    suite = parse_suite(text, tmp_path / "e.toml", registry)
    worker = Worker(registry, torch.device("cpu"), measure_deployment=suite.options.measure_deployment)
    record = worker.run(suite.cells[0])
    assert record.status == "ok", record.error
    cost = record.cost
    assert cost.energy_source == "rapl" and cost.energy_devices == "package-0"
    assert cost.energy_joules == pytest.approx(len(reads) - 1)  # every read after the first added 1 J
    assert isinstance(cost.energy_shared, bool)
