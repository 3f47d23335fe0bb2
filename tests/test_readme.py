"""The README states facts about the code; these tests keep them true."""
import ast
import re
from pathlib import Path

from tlbench.plugins import plugin_manager
from tlbench.registry import Registry

README = Path(__file__).resolve().parents[1] / "README.md"


def test_strategy_table_states_each_builtin_default_grid():
    registry = Registry.collect(plugin_manager()[0])
    section = README.read_text().split("## Strategies, fairly compared", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|", section, flags=re.M)
    stated = {name: cell.strip() for name, cell in rows}
    assert set(stated) == set(registry.records["strategy"])
    for name, cell in stated.items():
        grid = registry.get("strategy", name).grid
        if cell.startswith("as `"):      # "as `finetune`": the same grid as that strategy
            assert grid == registry.get("strategy", cell[4:-1]).grid, name
            continue
        key, _, values = cell.strip("`").partition(" = ")
        assert {key: ast.literal_eval(values)} == grid, name
