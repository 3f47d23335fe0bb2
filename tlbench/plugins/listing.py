"""The plugin listing cache: what ``tlbench list`` prints, kept as JSON so that listing again
imports no plugin (and no torch).

The listing is computed from a loaded :class:`~tlbench.plugins.registry.Registry` once and stored in
``listing.json`` under :func:`cache_dir`. It is reused while its :func:`cache_key` matches: the key
changes with tlbench, Python, the installed plugins and the code of every plugin, and computing it
imports nothing that a plugin imports. Not in the key: other installed packages that a plugin
imports (``tlbench list --refresh`` rebuilds after those change). An unreadable, corrupt or
mismatching cache file is a miss, never an error.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path

from tlbench import __version__
from tlbench.plugins.registry import KINDS, Registry

__all__ = ["OptionEntry", "PluginEntry", "cache_dir", "cache_key", "entries_of", "load", "save"]


@dataclass(frozen=True)
class OptionEntry:
    """One option of a listed record: its help, its default as ``repr`` (None: required) and the
    default ``grid`` / search ``space`` the record gives it, as text (None: none)."""

    name: str
    help: str
    default: str | None
    grid: str | None
    space: str | None


@dataclass(frozen=True)
class PluginEntry:
    """One listed record: its ``kind`` (``"strategy"``, ...), the ``key`` it is listed under (its
    qualified name when another plugin registers its ``name`` too), its help, the plugin it came
    from (``source``), its options and its ``tasks`` (a dataset's task, the tasks a strategy
    trains; none for the other kinds)."""

    kind: str
    key: str
    name: str
    help: str
    source: str
    options: tuple[OptionEntry, ...]
    tasks: tuple[str, ...] = ()

    @property
    def clashes(self) -> bool:
        """Another plugin registers this record's name: it is listed under its qualified name."""
        return self.key != self.name


def entries_of(registry: Registry) -> list[PluginEntry]:
    """Every record of ``registry``, kind by kind (in :data:`~tlbench.plugins.registry.KINDS` order), by key."""
    return [_entry(kind, key, record, registry.sources[kind][key])
            for kind in KINDS for key, record in sorted(registry.records[kind].items())]


def _entry(kind: str, key: str, record, source: str) -> PluginEntry:
    options = getattr(record, "options", None)
    grid, space = getattr(record, "grid", {}), getattr(record, "space", {})
    return PluginEntry(kind, key, record.name, record.help, source, tuple(
        OptionEntry(field, info.description or "", None if info.is_required() else repr(info.default),
                    str(grid[field]) if grid.get(field) else None, str(space[field]) if space.get(field) else None)
        for field, info in (options.model_fields.items() if options else ())),
        (record.task,) if kind == "dataset" else tuple(getattr(record, "tasks", ())))


def cache_dir() -> Path:
    """``$TLBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/tlbench``, else ``~/.cache/tlbench``."""
    if os.environ.get("TLBENCH_CACHE_DIR"):
        return Path(os.environ["TLBENCH_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tlbench"


def cache_key(plugins: Sequence[str]) -> str:
    """A digest of everything the listing depends on: tlbench's and Python's versions, every
    ``tlbench`` entry point (name, value, distribution and its version), the ``--plugin`` modules
    ``plugins``, and the path, size and mtime of every ``.py`` file of the top-level packages of
    those modules and of tlbench (found without importing them)."""
    points = list(entry_points(group="tlbench"))
    # .name and .version each parse the metadata: once per distribution, not per entry point
    release = {None: ("?", "?")} | {dist: (dist.name, dist.version) for dist in {ep.dist for ep in points} if dist}
    modules = ["tlbench", *plugins, *(ep.module for ep in points)]
    parts = {"tlbench": __version__, "python": sys.version, "plugins": list(plugins),
             "entry_points": sorted((ep.name, ep.value, *release[ep.dist]) for ep in points),
             "files": sorted(_stamps(modules))}
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _stamps(modules: Sequence[str]) -> Iterator[tuple[str, int, int]]:
    """``(path, size, mtime_ns)`` of each file of :func:`_files` (one that cannot be read is left out:
    a dangling link, or a file removed since)."""
    for path in set(_files(modules)):
        try:
            stat = path.stat()
        except OSError:
            continue
        yield str(path), stat.st_size, stat.st_mtime_ns


def _files(modules: Sequence[str]) -> Iterator[Path]:
    """The ``.py`` files of the top-level package (or the file) of each module: a top-level name's
    spec is found without running any module."""
    for top in {module.partition(".")[0] for module in modules}:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):  # e.g. an empty --plugin name: loading it reports that
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:  # a package (a namespace package: several folders)
            for folder in spec.submodule_search_locations:
                yield from Path(folder).rglob("*.py")
        elif spec.has_location and spec.origin and Path(spec.origin).is_file():
            yield Path(spec.origin)


def _path() -> Path:
    return cache_dir() / "listing.json"


def load(key: str) -> list[PluginEntry] | None:
    """The cached listing if it was stored under ``key``; None for a miss (no file, another key,
    or a file that cannot be read or parsed)."""
    try:
        stored = json.loads(_path().read_text())
        if stored["key"] != key:
            return None
        return [PluginEntry(**{**entry, "options": tuple(OptionEntry(**option) for option in entry["options"]),
                               "tasks": tuple(entry["tasks"])})
                for entry in stored["entries"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None


def save(key: str, entries: Sequence[PluginEntry]) -> None:
    """Store ``entries`` under ``key``, replacing the file whole (a concurrent reader sees the old
    listing or the new one). Raises OSError where the cache folder cannot be written."""
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    written = path.with_name(f".listing-{os.getpid()}.json")
    try:
        written.write_text(json.dumps({"key": key, "entries": [asdict(entry) for entry in entries]}))
        os.replace(written, path)
    finally:
        written.unlink(missing_ok=True)
