"""The CodeCarbon tracker converts measured joules to CO2e estimates; cells without energy give none."""
import csv

import pytest

pytest.importorskip("codecarbon")

from tlbench.contract.results import CellRecord, Cost  # noqa: E402
from tlbench.trackers import codecarbon as tracker  # noqa: E402


def cell_record(cell_id, joules):
    return CellRecord(cell_id=cell_id, backbone="b", dataset="d", strategy="s",
                      cost=Cost(energy_joules=joules, energy_source="rapl" if joules else None,
                                energy_shared=False if joules else None))


def test_a_given_intensity_converts_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("TLBENCH_CARBON_INTENSITY", "400")
    run = tracker.CarbonTracker(tmp_path)
    run.cell_finished(cell_record("a", 3.6e6))  # one kWh
    run.cell_finished(cell_record("b", None))  # nothing measured: no row, nothing invented
    run.suite_finished()
    rows = list(csv.DictReader((tmp_path / "emissions.csv").open()))
    assert [r["cell_id"] for r in rows] == ["a"]
    assert float(rows[0]["co2e_grams_estimate"]) == pytest.approx(400.0)
    assert rows[0]["intensity_origin"] == "TLBENCH_CARBON_INTENSITY"


def test_a_country_uses_codecarbons_energy_mix(monkeypatch):
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata
    from codecarbon.input import DataSource

    monkeypatch.delenv("TLBENCH_CARBON_INTENSITY", raising=False)
    monkeypatch.setenv("TLBENCH_CARBON_COUNTRY", "fra")
    intensity = tracker.intensity_from_env()
    kg_per_kwh = Emissions(DataSource()).get_country_emissions(Energy.from_energy(kWh=1.0),
                                                               GeoMetadata(country_iso_code="FRA"))
    assert intensity.grams_per_kwh == pytest.approx(1e3 * kg_per_kwh) and intensity.origin == "CodeCarbon FRA"
    assert tracker.grams(1.8e6, intensity) == pytest.approx(500 * kg_per_kwh)  # half a kWh


def test_bad_settings_are_one_line_errors(monkeypatch):
    import tlbench
    monkeypatch.setenv("TLBENCH_CARBON_INTENSITY", "lots")
    with pytest.raises(tlbench.UserError, match="grams CO2e per kWh"):
        tracker.intensity_from_env()
    monkeypatch.delenv("TLBENCH_CARBON_INTENSITY")
    monkeypatch.setenv("TLBENCH_CARBON_COUNTRY", "XYZ")
    with pytest.raises(tlbench.UserError, match="ISO 3166-1 alpha-3"):
        tracker.intensity_from_env()


def test_no_energy_writes_no_file(tmp_path):
    run = tracker.CarbonTracker(tmp_path)
    run.cell_finished(cell_record("a", None))
    run.suite_finished()
    assert not (tmp_path / "emissions.csv").exists()
