"""Property: whatever suite document or command line a user gives, `tlbench run FILE --dry-run`
exits 0, or exits 2 with exactly one ``error: ...`` line on stderr: never a traceback.

Documents start from the valid TINY suite and are mutated (keys dropped or renamed, values
replaced by random TOML values of other types, lists where tables are, tables where lists are,
random bytes spliced into the text). Only --dry-run is used: nothing trains.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import math
import tomllib

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import TINY
from tlbench.cli import main

SETTINGS = settings(max_examples=150, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PLUGIN_NAMES = ["digits", "imagefolder", "cifar10", "digits-printed2hand", "tiny_cnn", "timm", "finetune",
                "linear_probe", "lora", "dann", "target_oracle", "scratch", "partial_finetune", "inprocess"]
KEYS = ["plugin", "label", "name", "seeds", "label_fractions", "output", "executor", "epochs", "lr", "C",
        "width", "input_size", "image_size", "device", "precision", "model", "rank", "root", "suite",
        "train", "backbone", "dataset", "strategy", "description", "k", ""]


# --------------------------------------------------------------------------- a small TOML writer

def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v).replace("\x7f", "\\u007f")
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(doc: dict) -> str:
    """Scalars and inline values first, then [tables] and [[arrays of tables]]."""
    def is_tables(v):
        return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict) and not is_tables(v)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += ["", f"[{json.dumps(k)}]"] + [f"{json.dumps(a)} = {toml_value(b)}" for a, b in v.items()]
        elif is_tables(v):
            for table in v:
                lines += ["", f"[[{json.dumps(k)}]]"] + [f"{json.dumps(a)} = {toml_value(b)}"
                                                         for a, b in table.items()]
    return "\n".join(lines) + "\n"


def test_writer_round_trips_tiny():
    doc = tomllib.loads(TINY)
    assert tomllib.loads(to_toml(doc)) == doc


# --------------------------------------------------------------------------- strategies

scalars = (st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=12) | st.booleans()
           | st.sampled_from(PLUGIN_NAMES) | st.dates() | st.sampled_from([0, 1, -1, 0.0, 0.5, 1.5, ""]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=3),
                      max_leaves=6)


def paths(node, prefix=()):
    """Every (container path, key) in a document."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield prefix, k
        yield from paths(v, prefix + (k,))


def at(doc, path):
    for k in path:
        doc = doc[k]
    return doc


@st.composite
def mutated_documents(draw) -> bytes:
    doc = tomllib.loads(TINY)
    for _ in range(draw(st.integers(1, 3))):
        where = list(paths(doc))
        if not where:
            break
        prefix, key = draw(st.sampled_from(where))
        parent = at(doc, prefix)
        op = draw(st.sampled_from(["drop", "rename", "replace", "listify", "tablify", "add"]))
        if op == "drop":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS) | st.text(max_size=6))] = parent.pop(key)
        elif op == "replace":
            parent[key] = draw(values)
        elif op == "listify":
            parent[key] = [parent[key]]
        elif op == "tablify":
            parent[key] = {"plugin": parent[key]} if not isinstance(parent[key], dict) else [parent[key]]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = draw(values)
    try:
        text = to_toml(doc).encode()
    except TypeError:
        text = TINY.encode()
    if draw(st.integers(0, 4)) == 0:  # random bytes spliced in, now and then
        pos = draw(st.integers(0, len(text)))
        text = text[:pos] + draw(st.binary(max_size=8)) + text[pos + draw(st.integers(0, 8)):]
    return text


def pairs(option, *examples):
    return st.tuples(st.just(option), st.sampled_from(examples) | st.text(max_size=6)).map(list)


cli_args = st.lists(
    st.sampled_from(["--rerun", "--no-report", "--strict-plugins", "--help", "--nope", "-x", "--filter",
                     "--output", "--plugin", "extra", ""]).map(lambda flag: [flag])
    | pairs("--plugin", "", ".relative", "os", "tlbench", "tlbench.builtins.strategies.lora",
            "tlbench.builtins.datasets.digits", "no_such_module_xyz", "tlbench.nope")
    | pairs("--output", "", ".", "out", "suite.toml", "suite.toml/x", "a\x00b", "/proc/x")
    | pairs("--filter", "strategy=finetune", "dataset=digits,nope", "backbone=", "=", "strategy", "x=y",
            "strategy=linear_probe", "dataset=digits", "strategy=,"),
    max_size=4).map(lambda groups: [a for g in groups for a in g])


# --------------------------------------------------------------------------- the property

def check(result) -> None:
    event(f"exit {result.exit_code}: " + " ".join(result.stderr.split()[:3])[:40])
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    if result.exit_code == 0:
        assert not lines, result.stderr
        return
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def fast_plugins(monkeypatch):
    """The default plugin set loaded once (entry points are read each call otherwise)."""
    from tlbench.plugins.host import Host
    real = Host.load
    cached = functools.lru_cache(maxsize=1)(lambda: real((), strict=False))
    monkeypatch.setattr(Host, "load", staticmethod(
        lambda modules=(), strict=False: cached() if not modules else real(modules, strict=strict)))


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@SETTINGS
@given(text=mutated_documents())
def test_any_suite_document_is_ok_or_one_error_line(text, tmp_path, monkeypatch, fast_plugins):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.toml").write_bytes(text)
    check(invoke("run", "suite.toml", "--dry-run"))


@SETTINGS
@given(args=cli_args)
def test_any_run_arguments_are_ok_or_one_error_line(args, tmp_path, monkeypatch, fast_plugins):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.toml").write_text(TINY)
    result = invoke("run", "suite.toml", "--dry-run", *args)
    check(result)
    assert not (tmp_path / "results").exists()  # a dry run makes nothing
