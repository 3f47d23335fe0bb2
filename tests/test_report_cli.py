"""`tlbench run` writes the report; `tlbench report` rebuilds it from the store alone."""
import pandas as pd

from test_suite_errors import assert_user_error


def test_run_writes_report_and_report_rebuilds_it_without_training(write_suite, cli):
    path = write_suite()
    result = cli("run", path)
    assert result.exit_code == 0, result.output
    page = path.parent / "results/tiny/report/report.html"
    assert page.is_file() and "report:" in result.stdout
    page.unlink()
    rebuilt = cli("report", path.parent / "results/tiny", "--filter", "strategy=linear_probe")
    assert rebuilt.exit_code == 0, rebuilt.output
    html = page.read_text()
    assert "linear_probe" in html and "<img" in html
    table = (path.parent / "results/tiny/report/tables/accuracy.md").read_text()
    assert "linear_probe" in table and "finetune" not in table


def test_report_options_baseline_and_reach(write_suite, cli):
    path = write_suite()
    assert cli("run", path, "--no-report").exit_code == 0
    results = path.parent / "results/tiny"
    result = cli("report", results, "--baseline", "linear_probe", "--reach", "0.2")
    assert result.exit_code == 0, result.output
    tables = results / "report" / "tables"
    savings = pd.read_csv(tables / "label_savings.csv")
    assert set(savings["baseline"]) == {"linear_probe"} and set(savings["strategy"]) == {"finetune"}
    # finetune evaluates during training: its validation curves come from the store
    compute = pd.read_csv(tables / "compute_to_accuracy.csv")
    assert "finetune" in set(compute["strategy"]) and (compute["target"] == 0.2).all()


def test_report_errors_are_one_line(write_suite, cli, tmp_path):
    assert_user_error(cli("report", tmp_path / "nowhere"), "nowhere", "no results here")
    path = write_suite()
    assert cli("run", path, "--no-report").exit_code == 0
    results = path.parent / "results/tiny"
    assert_user_error(cli("report", results, "--filter", "strategy=nope"), "nope", "linear_probe")
    assert_user_error(cli("report", results, "--filter", "colour=red"), "--filter", "KEY=A,B")
    assert_user_error(cli("report", results, "--baseline", "nope"), "--baseline 'nope'",
                      "finetune, linear_probe")
