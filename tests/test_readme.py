"""The README states facts about the code; these tests keep them true."""
import ast
import re
from pathlib import Path

from tlbench.plugins.loading import plugin_manager
from tlbench.plugins.host import Host

README = Path(__file__).resolve().parents[1] / "README.md"


def test_strategy_table_states_each_builtin_default_grid():
    registry = Host(plugin_manager()[0]).registry
    section = README.read_text().split("## Strategies, fairly compared", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| [^|]+ \| ([^|]+) \|", section, flags=re.M)
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
    """"Writing a plugin" lists the example package's files exactly as they are."""
    section = README.read_text().split("## Writing a plugin", 1)[1].split("\n## ", 1)[0]
    package = README.parent / "plugins" / "tlbench-example"
    for path, lang in (("pyproject.toml", "toml"), ("tlbench_example/__init__.py", "python")):
        listing = re.search(rf"`plugins/tlbench-example/{re.escape(path)}`\n```{lang}\n(.*?)```", section, flags=re.S)
        assert listing, path
        assert listing.group(1) == (package / path).read_text(), path


def test_readme_does_not_point_to_the_removed_drafts():
    assert "docs/readme" not in README.read_text()
