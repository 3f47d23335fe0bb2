"""Energy a cell used, read from the hardware's own counters; never estimated.

Two sources, chosen by the cell's device:

- ``nvml`` (a CUDA device): NVIDIA's total-energy counter of that GPU
  (``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the driver loaded; Volta and newer),
  through ``nvidia-ml-py`` (``pip install "tlbench[energy]"``), imported only when a GPU cell runs.
  It covers the GPU alone, not the host CPU that feeds it.
- ``rapl`` (the CPU): the RAPL package counters under ``/sys/class/powercap``
  (``intel-rapl:N/energy_uj``, microjoules; Intel, and AMD Zen through the same driver). Each
  counter wraps at its ``max_energy_range_uj``: the meter polls every few seconds, so that a long
  cell does not miss a wrap. Subzones (``intel-rapl:N:M``: cores, uncore, DRAM) lie inside their
  package and ``psys`` contains the packages: neither is added. Often readable by root only, and
  absent in most virtual machines.

Where neither is readable there is no meter and a record's energy fields stay ``None``.

A reading is the device's, not the cell's alone: ``shared`` says that other processes used the
device during the cell (NVML: another process had a compute context on the GPU at a poll; RAPL:
other processes used more than :data:`OTHERS_SHARE` of the busy CPU time), so the joules include
theirs.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil
import torch

RAPL_ROOT = Path("/sys/class/powercap")
#: RAPL is marked shared when processes other than the cell's used more than this share of the CPU
OTHERS_SHARE = 0.10
#: seconds between polls of the counters during a cell (RAPL's counter wraps within minutes to hours)
POLL_SECONDS = 5.0


@dataclass(frozen=True)
class EnergyReading:
    """The energy of one metered span: joules, the source, the devices it covers, and whether
    other processes used those devices meanwhile."""

    joules: float
    source: str
    devices: str
    shared: bool

    def cost_fields(self) -> dict:
        """The record's ``energy_*`` cost fields."""
        return dict(energy_joules=self.joules, energy_source=self.source, energy_devices=self.devices,
                    energy_shared=self.shared)


class Counters(Protocol):
    """Monotonic energy counters of a set of devices (wrapping at ``wrap`` joules, or never)."""

    source: str
    devices: list[str]
    wrap: list[float | None]

    def read(self) -> list[float]:
        """Each counter now, in joules."""

    def others_active(self) -> bool:
        """Whether another process used the devices since the previous call (or is using them
        now); called when the meter starts, at each poll and when it stops."""


class RaplCounters:
    """The RAPL package zones under a powercap root (a real ``/sys/class/powercap`` or a copy)."""

    source = "rapl"

    def __init__(self, zones: list[Path]):
        self.zones = zones
        self.devices = [(z / "name").read_text().strip() for z in zones]
        self.wrap = [_read_uj(z / "max_energy_range_uj") for z in zones]
        self._cpu: tuple[float, float] | None = None

    @classmethod
    def find(cls, root: Path = RAPL_ROOT) -> "RaplCounters | None":
        """The readable package zones of ``root``, or None where there are none."""
        zones = []
        for zone in sorted(Path(root).glob("intel-rapl:*")):
            if not re.fullmatch(r"intel-rapl:\d+", zone.name):
                continue  # a subzone: inside its package
            try:
                if not (zone / "name").read_text().strip().startswith("package"):
                    continue  # psys: the whole platform, packages included
                _read_uj(zone / "energy_uj"), _read_uj(zone / "max_energy_range_uj")
            except (OSError, ValueError):
                continue  # unreadable (root only) or not a counter
            zones.append(zone)
        return cls(zones) if zones else None

    def read(self) -> list[float]:
        return [_read_uj(z / "energy_uj") for z in self.zones]

    def others_active(self) -> bool:
        """Other processes used more than :data:`OTHERS_SHARE` of the machine's busy CPU time
        since the previous call (the package's counter counts them too)."""
        before, self._cpu = self._cpu, _cpu_times()
        if before is None:
            return False
        busy, own = self._cpu[0] - before[0], self._cpu[1] - before[1]
        return busy > 0 and busy - own > OTHERS_SHARE * busy


def _read_uj(path: Path) -> float:
    return int(path.read_text().strip()) / 1e6


class NvmlCounters:
    """One GPU's NVML total-energy counter (and its list of compute processes)."""

    source = "nvml"

    def __init__(self, nvml, handle, label: str):
        self.nvml, self.handle = nvml, handle
        self.devices, self.wrap = [label], [None]
        self.read()  # raises NVMLError (e.g. NotSupported on GPUs before Volta) here, not mid-cell

    def read(self) -> list[float]:
        return [self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1e3]

    def others_active(self) -> bool:
        pids = {p.pid for p in self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)}
        # in a container NVML lists host pids: then this process is one of the unknown ones
        return len(pids - {os.getpid()}) > (0 if os.getpid() in pids else 1)


def nvml_counters(device: torch.device) -> NvmlCounters | None:
    """The NVML counter of a CUDA device (found by its UUID, else its index), or None where
    nvidia-ml-py is missing or the GPU has no energy counter."""
    try:
        import pynvml
    except ImportError:
        return None
    index = device.index or 0
    try:
        pynvml.nvmlInit()
        try:
            uuid = f"GPU-{torch.cuda.get_device_properties(index).uuid}"
            handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
        except Exception:  # no torch UUID (old torch, no CUDA) or NVML does not know it
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else name
        return NvmlCounters(pynvml, handle, f"cuda:{index} {name}")
    except pynvml.NVMLError:
        return None


def counters_for(device: torch.device, rapl_root: Path = RAPL_ROOT) -> Counters | None:
    """The energy counters that cover ``device``: NVML for a CUDA GPU, RAPL for the CPU; None
    where neither is readable."""
    if device.type == "cuda":
        return nvml_counters(device)
    if device.type == "cpu":
        return RaplCounters.find(rapl_root)
    return None


class Meter:
    """Joules the counters' devices used since ``__enter__``; ``joules()`` may be called at any
    time (the training loop records it at each evaluation), ``reading`` is set on exit. A thread
    polls every ``poll_seconds`` so that no wrap of a counter is missed."""

    def __init__(self, counters: Counters, poll_seconds: float = POLL_SECONDS):
        self.counters, self.poll_seconds = counters, poll_seconds
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.reading: EnergyReading | None = None

    def __enter__(self) -> "Meter":
        self.counters.others_active()  # a baseline: what ran before the cell does not count
        self.total, self.last, self.others = 0.0, self.counters.read(), False
        self.thread = threading.Thread(target=self._poll_loop, daemon=True, name="tlbench-energy")
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()
        joules = self.joules()
        shared = self.others or self.counters.others_active()
        self.reading = EnergyReading(joules, self.counters.source, ",".join(self.counters.devices), shared)

    def joules(self) -> float:
        """Energy so far, in joules."""
        with self.lock:
            now = self.counters.read()
            for before, after, wrap in zip(self.last, now, self.counters.wrap):
                delta = after - before
                self.total += delta + wrap if delta < 0 and wrap else delta
            self.last = now
            return self.total

    def _poll_loop(self) -> None:
        while not self.stopped.wait(self.poll_seconds):
            self.joules()
            self.others = self.others or self.counters.others_active()


def _cpu_times() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its children)."""
    machine = psutil.cpu_times()
    busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
    own = psutil.Process().cpu_times()
    return busy, own.user + own.system + own.children_user + own.children_system
