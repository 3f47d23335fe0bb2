"""CO₂e of the measured energy, through CodeCarbon's carbon-intensity data — an *estimate*.

Active when CodeCarbon is importable (``pip install "tlbench[carbon]"``) unless
``TLBENCH_CODECARBON=0``; without it this module defines no hooks (and never imports CodeCarbon at
start-up). It does not measure anything itself (CodeCarbon's trackers fall back to TDP guesses
where no counter is readable): it converts the joules that tlbench measured per cell
(``cost.energy_joules``, NVML or RAPL) with the carbon intensity of the electricity of a region:

- ``TLBENCH_CARBON_COUNTRY``: ISO 3166-1 alpha-3 code (``FRA``, ``USA``, ``DEU``, ...), with
  ``TLBENCH_CARBON_REGION`` for the regions CodeCarbon knows within a country (US states, Canadian
  provinces, ...); CodeCarbon's bundled energy-mix data, no network;
- or ``TLBENCH_CARBON_INTENSITY``: grams CO₂e per kWh, given;
- neither: CodeCarbon's world average.

When a suite run ends it writes ``<results dir>/emissions.csv``: one row per cell that measured
energy (its joules, source, whether the device was shared, grams CO₂e, the intensity and its
origin), and nothing when no cell measured energy. A shared device's joules include other
processes' energy, and so do their grams.
"""
from __future__ import annotations

import csv
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import tlbench

JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Intensity:
    """Grams CO₂e per kWh and where the number comes from."""

    grams_per_kwh: float
    origin: str


def intensity_from_env() -> Intensity:
    """The carbon intensity the environment configures (see the module)."""
    given = os.environ.get("TLBENCH_CARBON_INTENSITY")
    if given:
        try:
            return Intensity(float(given), "TLBENCH_CARBON_INTENSITY")
        except ValueError:
            raise tlbench.UserError(f"TLBENCH_CARBON_INTENSITY={given!r}: give grams CO2e per kWh, e.g. 400") from None
    country, region = os.environ.get("TLBENCH_CARBON_COUNTRY"), os.environ.get("TLBENCH_CARBON_REGION")
    return region_intensity(country, region)


def region_intensity(country: str | None, region: str | None = None) -> Intensity:
    """CodeCarbon's intensity for a country (and region), or its world average for None."""
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata
    from codecarbon.input import DataSource

    data = DataSource()
    if country is None:
        return Intensity(float(data.get_carbon_intensity_per_source_data()["world_average"]),
                         "CodeCarbon world average")
    if country.upper() not in data.get_global_energy_mix_data():
        raise tlbench.UserError(f"TLBENCH_CARBON_COUNTRY={country!r}: not a country CodeCarbon has data for; "
                                "give an ISO 3166-1 alpha-3 code such as FRA, USA or DEU")
    kg = Emissions(data).get_private_infra_emissions(Energy.from_energy(kWh=1.0),
                                                     GeoMetadata(country_iso_code=country, region=region))
    return Intensity(1e3 * kg, f"CodeCarbon {country.upper()}" + (f" {region}" if region else ""))


def grams(joules: float, intensity: Intensity) -> float:
    return joules / JOULES_PER_KWH * intensity.grams_per_kwh


class CarbonTracker:
    """The emission rows of one suite run; the intensity is looked up at the first cell that
    measured energy (CodeCarbon is slow to import, and most machines measure none)."""

    FIELDS = ["cell_id", "backbone", "dataset", "strategy", "energy_joules", "energy_source", "energy_shared",
              "co2e_grams_estimate", "intensity_g_per_kwh", "intensity_origin"]

    def __init__(self, results_dir: Path, intensity: Intensity | None = None):
        self.path, self.intensity, self.rows = Path(results_dir) / "emissions.csv", intensity, []

    def cell_finished(self, record) -> None:
        cost = record.cost
        if cost.energy_joules is None:
            return
        self.intensity = self.intensity or intensity_from_env()
        self.rows.append([record.cell_id, record.backbone, record.dataset, record.strategy, cost.energy_joules,
                          cost.energy_source, cost.energy_shared, grams(cost.energy_joules, self.intensity),
                          self.intensity.grams_per_kwh, self.intensity.origin])

    def suite_finished(self) -> None:
        if not self.rows:
            return
        with self.path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.FIELDS)
            writer.writerows(self.rows)


def installed() -> bool:
    return importlib.util.find_spec("codecarbon") is not None


def switched_on() -> bool:
    return os.environ.get("TLBENCH_CODECARBON", "1") != "0"


_runs: dict[str, tuple[str, CarbonTracker]] = {}  # results dir -> (suite name, its tracker)

if installed():
    @tlbench.hookimpl
    def tlbench_suite_started(suite_name: str, results_dir: Path, cells) -> None:
        if switched_on():
            _runs[str(results_dir)] = (suite_name, CarbonTracker(results_dir))

    @tlbench.hookimpl
    def tlbench_cell_finished(cell, record) -> None:
        for suite_name, tracker in _runs.values():
            if suite_name == cell.suite:
                tracker.cell_finished(record)

    @tlbench.hookimpl
    def tlbench_suite_finished(suite_name: str, results_dir: Path, status: str) -> None:
        run = _runs.pop(str(results_dir), None)
        if run is not None:
            run[1].suite_finished()
