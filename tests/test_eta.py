"""The run's ETA: cells left are expected to cost what finished cells of their kind cost."""
import pytest

from tlbench.run.eta import Eta


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_cheap_cells_finished_first_do_not_make_the_slow_ones_look_cheap():
    clock = Clock()
    eta = Eta(12, ["probe"] * 6 + ["finetune"] * 6, clock)
    assert eta.remaining() is None and eta.text() == "?"
    for _ in range(6):  # six 1-second probe cells, one worker
        clock.now += 1
        eta.finished("probe", 1.0)
    clock.now += 30
    eta.finished("finetune", 30.0)
    # five fine-tuning cells of 30 s left, at the run's rate so far (one worker: 1 s of wall a second)
    assert eta.remaining() == pytest.approx(150.0)
    # (the mean over the seven finished cells, 36 s / 7, would have said 26 s)
    assert eta.text() == "00:02:30"


def test_two_workers_halve_the_wall_time_and_unseen_kinds_cost_the_mean():
    clock = Clock()
    eta = Eta(6, ["a", "a", "a", "a", "b", "b"], clock)
    clock.now = 10  # two workers, two 10-second cells at once
    eta.finished("a", 10.0)
    eta.finished("a", 10.0)
    assert eta.remaining() == pytest.approx((2 * 10 + 2 * 10) * 10 / 20)  # "b" unseen: the mean, 10 s


def test_without_known_cells_every_cell_left_costs_the_mean():
    clock = Clock()
    eta = Eta(4, None, clock)
    clock.now = 6
    eta.finished("x", 2.0)
    eta.finished("y", 4.0)
    assert eta.remaining() == pytest.approx(2 * 3.0 * 6 / 6)


def test_a_run_prints_an_eta_on_every_finished_cell(write_suite, cli):
    result = cli("run", write_suite(), "--no-report")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 12 and all("ETA " in line for line in lines)
    assert lines[-1].endswith("ETA 00:00:00)")  # nothing left after the last cell
