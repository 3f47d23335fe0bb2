"""The documentation site builds strictly, documents every hook and every built-in plugin, and its
plugin examples, written from the pages alone, pass the conformance kit and run in a suite."""
import ast
import importlib
import os
import re
import subprocess
import sys
import tomllib

import pytest
import yaml

import tlbench
from tlbench import testing
from tlbench.plugins import hookspecs
from tlbench.plugins.loading import plugin_manager
from tlbench.plugins.host import Host

from helpers.docs import DOCS, ROOT, named_block, page, python_blocks, section

HOOKS = [name for name in dir(hookspecs) if name.startswith("tlbench_")]


@pytest.fixture(scope="module")
def registry():
    return Host(plugin_manager()[0]).registry


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e \".[docs]\")")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (pip install -e \".[docs]\")")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir",
                             str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site/writing-plugins/index.html").is_file()
    assert "CellContext" in (tmp_path / "site/api/tlbench/index.html").read_text()


def nav_pages(nav) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    items = nav.values() if isinstance(nav, dict) else nav
    return set().union(*(nav_pages(item) for item in items))


def test_every_page_is_in_the_nav():
    nav = nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages == nav, f"in docs/ but not in mkdocs.yml's nav: {sorted(pages - nav)}; missing: {sorted(nav - pages)}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_its_heading_on_the_writing_plugins_page(hook):
    assert f"\n### `{hook}`\n" in page("writing-plugins.md")


def test_the_api_page_covers_the_public_face():
    """docs/hooks.py documents tlbench._LAZY's names: that is every name of __all__ but two."""
    assert set(tlbench.__all__) == set(tlbench._LAZY) | {"hookimpl", "__version__"}
    assert "<!-- tlbench.__all__ -->" in page("api/tlbench.md")


@pytest.mark.parametrize("kind, heading", [("backbone", "## Backbones"), ("dataset", "## Datasets"),
                                           ("strategy", "## Strategies"), ("executor", "## Executors"),
                                           ("scorer", "## Scorers")])
def test_the_builtin_plugins_page_names_every_builtin_of_its_kind(registry, kind, heading):
    listed = set(re.findall(r"`([\w-]+)`", section(page("plugins.md"), heading)))
    missing = set(registry.records[kind]) - listed
    assert not missing, f"{heading}: not on the page: {sorted(missing)}"


def test_readme_links_into_the_docs_resolve():
    readme = page("README.md")
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) >= 10
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing
    assert len(readme.splitlines()) <= 300


def test_readme_keeps_the_two_commands_ci_runs():
    lines = page("README.md").split("```bash\n", 1)[1].splitlines()
    assert lines[1] == 'python3 -m venv .venv && . .venv/bin/activate && pip install -e . && tlbench run suites/vision.toml'
    assert lines[4] == ('python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" '
                        '&& python -m pytest -q')


def test_readme_does_not_point_to_the_removed_drafts():
    assert "docs/readme" not in page("README.md")


# ------------------------------------------------------------------------------------------------
# The examples, written from the pages alone


def load_example(tmp_path, monkeypatch, markdown: str, filename: str):
    """Save the page's block titled ``filename`` and import it, as its reader would."""
    (tmp_path / filename).write_text(named_block(markdown, filename))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = filename.removesuffix(".py")
    monkeypatch.delitem(sys.modules, module, raising=False)
    return importlib.import_module(module)


def test_the_backbone_example_passes_the_kit(tmp_path, monkeypatch):
    module = load_example(tmp_path, monkeypatch, page("writing-plugins.md"), "my_backbone.py")
    [record] = module.tlbench_backbones()
    testing.check_backbone_plugin(record, {"width": 8, "input_size": 16})
    with pytest.raises(tlbench.UserError, match="no weights file"):
        record.check(record.options(weights=str(tmp_path / "missing.safetensors")))


def test_the_dataset_example_passes_the_kit(tmp_path, monkeypatch):
    module = load_example(tmp_path, monkeypatch, page("writing-plugins.md"), "my_noise.py")
    [record] = module.tlbench_datasets()
    testing.check_dataset_plugin(record, {"n": 40})


def test_the_scorer_example_passes_the_kit(tmp_path, monkeypatch):
    module = load_example(tmp_path, monkeypatch, page("writing-plugins.md"), "my_scores.py")
    [record] = module.tlbench_scorers()
    testing.check_scorer_plugin(record)


def test_the_executor_example_passes_the_kit(tmp_path, monkeypatch):
    module = load_example(tmp_path, monkeypatch, page("writing-plugins.md"), "my_executor.py")
    [record] = module.tlbench_executors()
    testing.check_executor_plugin(record, {"device": "cpu"})


def test_the_tracker_example_logs_a_run(tmp_path, monkeypatch, cli):
    load_example(tmp_path, monkeypatch, page("writing-plugins.md"), "my_tracker.py")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.toml").write_text(testing.tiny_suite([{"plugin": "linear_probe", "C": 1.0}]))
    result = cli("run", "suite.toml", "--plugin", "my_tracker", "--no-report")
    assert result.exit_code == 0, result.output
    events = [ast.literal_eval(line.replace("null", "None"))
              for line in (tmp_path / "results/kit/events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["suite_started", "cell_started", "cell_finished", "suite_finished"]
    assert events[2]["status"] == "ok" and events[2]["test_acc"] > 0.1 and events[-1]["status"] == "ok"


def test_the_task_example_passes_the_kit_and_runs_in_a_suite(tmp_path, monkeypatch, cli):
    from tlbench.tasks import task as tasks
    monkeypatch.setattr(tasks, "_TASKS", dict(tasks._TASKS))  # the example's task is forgotten after the test
    module = load_example(tmp_path, monkeypatch, page("writing-plugins.md"), "my_regression.py")
    testing.check_task_plugin(tasks.get("regression"))
    [record] = module.tlbench_datasets()
    testing.check_dataset_plugin(record, {"n": 40})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.toml").write_text(testing.tiny_suite([{"plugin": "finetune", "lr": 3e-3}],
                                                            dataset={"plugin": "brightness", "n": 120}))
    result = cli("run", "suite.toml", "--plugin", "my_regression")
    assert result.exit_code == 0, result.output
    assert "test closeness" in result.output
    [row] = tlbench.load_results(tmp_path / "results/kit").to_dict("records")
    assert row["status"] == "ok" and row["task"] == "regression"
    assert 0 < row["val_closeness"] <= 1 and 0 < row["test_closeness"] <= 1 and row["test_mae"] >= 0
    assert (tmp_path / "results/kit/report/report.html").is_file()


def test_the_readme_plugin_passes_the_kit(tmp_path, monkeypatch):
    module = load_example(tmp_path, monkeypatch, page("README.md"), "my_plugin.py")
    for record in module.tlbench_strategies():
        testing.check_strategy_plugin(record)


def test_the_readme_minimal_suite_is_valid(tmp_path, monkeypatch, cli):
    suite = named_block(page("README.md"), "my-suite.toml", "toml")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-suite.toml").write_text(suite)
    result = cli("run", "my-suite.toml", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "preflight ok" in result.output


# ------------------------------------------------------------------------------------------------
# Facts the pages state about the code (moved from tests/test_readme.py with the README's content)


def test_strategy_table_states_each_builtin_default_grid(registry):
    text = section(page("guides/strategies.md"), "# Strategies, fairly compared")
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| [^|]+ \| ([^|]+) \|", text, flags=re.M)
    stated = {name: cell.strip() for name, _, cell in rows}
    assert set(stated) == set(registry.records["strategy"])
    for name, role, _ in rows:
        assert registry.get("strategy", name).role == role, name
    for name, cell in stated.items():
        grid = registry.get("strategy", name).grid
        if cell == "—":                 # no grid
            assert grid == {}, name
            continue
        if cell.startswith("as `"):      # "as `finetune`": the same grid as that strategy
            assert grid == registry.get("strategy", cell[4:-1]).grid, name
            continue
        key, _, values = cell.strip("`").partition(" = ")
        assert {key: ast.literal_eval(values)} == grid, name


def test_example_plugin_listing_is_the_example_package_verbatim():
    """The writing-plugins page lists the example package's files exactly as they are."""
    package = ROOT / "plugins" / "tlbench-example"
    for path, lang in (("pyproject.toml", "toml"), ("tlbench_example/__init__.py", "python")):
        listed = named_block(page("writing-plugins.md"), f"plugins/tlbench-example/{path}", lang)
        assert listed == (package / path).read_text(), path


def test_docs_python_blocks_parse():
    """Every Python block of the pages is valid Python (the complete ones also run, above)."""
    for path in [*DOCS.rglob("*.md"), ROOT / "README.md"]:
        for block in python_blocks(path.read_text()):
            ast.parse(block, str(path))


def test_pyproject_lists_the_docs_tools_in_test_and_docs_extras():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in ("test", "docs"):
        assert {"mkdocs-material", "mkdocstrings[python]"} <= {re.split(r"[<>=]", d)[0] for d in extras[extra]}


def test_the_architecture_page_names_every_import_linter_contract():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    text = section(page("architecture.md"), "## The import-linter contracts")
    assert {c["id"] for c in contracts} == set(re.findall(r"^\| `([\w-]+)` \|", text, flags=re.M))
