"""The plugin listing cache (tlbench.plugins.listing): a hit prints what a miss printed and imports no
plugin; an edited plugin, a corrupt or unwritable cache and --refresh each load the plugins again.
A miss imports every plugin but none of the heavy libraries (torch, timm, ...)."""
import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from tlbench.plugins import listing

SCORER = '''
import tlbench

@tlbench.hookimpl
def tlbench_scorers():
    return [tlbench.ScorerPlugin("toy", "{help}", lambda features, labels, source_logits: 0.0)]
'''

RAISING = '''
import tlbench

@tlbench.hookimpl
def tlbench_datasets():
    raise RuntimeError("dataset server is down")
'''


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write (or rewrite) an importable plugin module; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, text: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
        monkeypatch.delitem(sys.modules, name, raising=False)  # --plugin imports the file as it is now
        return name
    return write


@pytest.fixture
def loads(monkeypatch):
    """How many times `tlbench list` loaded the plugins (0: it listed from the cache)."""
    from tlbench import api
    calls, load = [], api.load_plugins

    def counted(*args):
        calls.append(args)
        return load(*args)
    monkeypatch.setattr(api, "load_plugins", counted)
    return calls


def test_a_hit_prints_what_the_miss_printed_without_loading_plugins(cli, loads, listing_cache):
    missed = cli("list")
    assert missed.exit_code == 0, missed.output
    assert (listing_cache / "listing.json").is_file() and len(loads) == 1  # in $TLBENCH_CACHE_DIR
    hit = cli("list")
    assert hit.stdout == missed.stdout and not hit.stderr and len(loads) == 1
    strategies = cli("list", "strategies").stdout
    assert strategies.startswith("strategy plugins\n") and strategies in missed.stdout and len(loads) == 1
    assert cli("list", "--refresh").stdout == missed.stdout and len(loads) == 2


def test_editing_a_plugin_module_lists_it_anew(cli, module, loads):
    name = module("listed_scorer", SCORER.format(help="first help"))
    assert "toy  first help" in cli("list", "scorers", "--plugin", name).stdout
    assert "toy  first help" in cli("list", "scorers", "--plugin", name).stdout and len(loads) == 1
    module(name, SCORER.format(help="the second help"))
    listed = cli("list", "scorers", "--plugin", name).stdout
    assert "toy  the second help" in listed and "first help" not in listed and len(loads) == 2


def test_the_key_follows_plugin_files_and_the_plugin_modules_given(module, tmp_path):
    name = module("keyed_scorer", SCORER.format(help="help"))
    key = listing.cache_key([name])
    assert listing.cache_key([name]) == key and listing.cache_key([]) != key
    path = tmp_path / f"{name}.py"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))  # touched
    assert listing.cache_key([name]) != key
    listing.cache_key(["", ".relative", "no_such_module"])  # no error: loading them reports it
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "__init__.py").write_text("")
    (tmp_path / "linked" / "gone.py").symlink_to(tmp_path / "nowhere.py")  # a dangling link: left out
    assert listing.cache_key(["linked"]) != listing.cache_key([])


def test_the_key_follows_the_entry_points(monkeypatch):
    key = listing.cache_key(())
    installed = listing.entry_points(group="tlbench")
    another = EntryPoint("another", "another_plugin", "tlbench")  # no distribution, no module found
    monkeypatch.setattr(listing, "entry_points", lambda group: [*installed, another])
    assert listing.cache_key(()) != key


@pytest.mark.parametrize("text", ["{not json", '{"key": "%s"}', '{"key": "%s", "entries": [{"kind": "x"}]}', "[]"])
def test_a_corrupt_cache_is_a_miss_and_is_rewritten(cli, loads, listing_cache, text):
    expected = cli("list", "executors").stdout
    path = listing_cache / "listing.json"
    path.write_text(text.replace("%s", json.loads(path.read_text())["key"]))
    listed = cli("list", "executors")
    assert listed.exit_code == 0 and listed.stdout == expected and not listed.stderr and len(loads) == 2
    assert listing.load(listing.cache_key(())) is not None


def test_an_unwritable_cache_is_one_warning_and_the_listing_still_comes(cli, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TLBENCH_CACHE_DIR", str(blocker))  # a folder that cannot be made
    listed = cli("list", "executors")
    assert listed.exit_code == 0 and "inprocess" in listed.stdout
    assert listed.stderr.count("\n") == 1 and listed.stderr.startswith("warning: the plugin listing is not cached")


def test_a_failing_plugin_is_not_cached_and_warns_every_time(cli, module, loads):
    name = module("failing_datasets", RAISING)
    for _ in range(2):
        listed = cli("list", "datasets", "--plugin", name)
        assert listed.exit_code == 0 and "digits" in listed.stdout
        assert f"plugin '{name}' failed in tlbench_datasets" in listed.stderr
    assert len(loads) == 2
    assert cli("list", "--plugin", name, "--strict-plugins").exit_code == 2


def test_cache_dir_is_tlbench_cache_dir_else_xdg_else_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TLBENCH_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert listing.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("TLBENCH_CACHE_DIR")
    assert listing.cache_dir() == tmp_path / "xdg" / "tlbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert listing.cache_dir() == tmp_path / ".cache" / "tlbench"


LIST_AND_SHOW_IMPORTS = """
import sys
from tlbench.cli import main
main(["list"], standalone_mode=False)
sys.stderr.write(" ".join(m for m in ("tlbench.builtins.backbones.timm", "tlbench.builtins.strategies.dann")
                          if m in sys.modules))
"""


def test_a_hit_imports_no_plugin(tmp_path):
    def run():
        done = subprocess.run([sys.executable, "-c", LIST_AND_SHOW_IMPORTS], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr
    missed, imported = run()
    loaded = ["tlbench.builtins.backbones.timm", "tlbench.builtins.strategies.dann"]
    assert imported.split() == loaded  # the miss loads the plugins
    hit, imported = run()
    assert hit == missed and imported == ""


#: what no plugin's metadata may cost (CHANGELOG 0.4: plugin modules import these inside their functions)
HEAVY = ("torch", "torchvision", "timm", "transformers", "peft", "sklearn", "pandas", "scipy")


#: `tlbench list` with tlbench's own entry points only: a third-party plugin installed beside it (the
#: example package, while tests/test_example_plugin.py runs) imports what it likes
BUILTINS_ONLY = """
import importlib.metadata, sys
every = importlib.metadata.entry_points
importlib.metadata.entry_points = lambda **group: importlib.metadata.EntryPoints(
    ep for ep in every(**group) if ep.dist is None or ep.dist.name == "tlbench")
from tlbench.cli import main
sys.argv = ["tlbench", "list"]
main()
"""


def test_a_cold_listing_imports_no_heavy_library(tmp_path, listing_cache):
    """`tlbench list` with an empty cache imports every built-in plugin and calls every hook, yet
    none of the heavy libraries (read from ``python -X importtime``, as bench/startup.py does)."""
    assert not any(listing_cache.iterdir())
    code = BUILTINS_ONLY
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "tlbench.train.strategies" in imported and "tlbench.contract.space" in imported  # read by the plugins
    for name in ("mobilenetv2", "timm", "transformers", "digits", "textfile", "dann", "peft", "lora", "simulated"):
        assert f"  {name}  " in done.stdout  # every plugin was listed
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert any(listing_cache.iterdir())  # and the listing was cached
