"""The results store: one SQLite file per suite, WAL mode, one transaction per finished cell, so a
crash or Ctrl-C loses at most the cells in flight and concurrent workers can write safely.

``results.csv`` and ``summary.md`` are exports of it; reports are built from it alone.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from tlbench.contract import evidence as evidence_mod
from tlbench.contract.errors import UserError
from tlbench.contract.evidence import SplitEvidence
from tlbench.contract.results import SCHEMA_VERSION, CellRecord, columns, flatten
from tlbench.analysis.selection import select_variants, summarize_seeds, task_column
from tlbench.tasks import task as tasks

# SCHEMA_VERSION is written in meta on creation; a store of another version is refused, never changed
FINISHED = ("ok", "skipped", "diverged")  # failed cells are retried by the next run


AFRESH = "to start afresh give --output another folder or delete this folder"
RESUME = ("the cells finished before are stored: free space there or make it writable, then run the same command "
          "again to resume")


class StoreFault(Exception):
    """The results folder refused a write (full, read-only, I/O error): one line, exit status 1."""


class Store:
    """The records of one suite, the run's metadata, and the claims of cells being run.

    A claim (``claim``) is a lease: it names its owner (host, process, run) and expires unless
    renewed, so a cell whose run died is taken by the next run, and two live runs never run the
    same cell.

    A ``tlbench.sqlite`` there that is not a tlbench store of this ``SCHEMA_VERSION`` is a
    :class:`UserError` and is left as it is."""

    def __init__(self, directory: Path, create: bool = True):
        path = directory / "tlbench.sqlite"
        if create:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"{directory}: cannot create the results folder ({exc.strerror or exc}); "
                                "give --output a folder that can be created") from None
        self.directory = directory
        try:
            self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError as exc:  # the folder's fault, not the file's
            why = "; the folder is read-only" if not os.access(directory, os.W_OK) else ""
            raise StoreFault(f"{directory}: cannot open the results store ({exc}{why}); {RESUME}") from None
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{path}: not a tlbench results store ({exc}); {AFRESH}") from None
        if tables and "records" not in tables:
            self.db.close()
            raise UserError(f"{path}: not a tlbench results store (an SQLite database without its tables); "
                            f"{AFRESH}")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS records (cell_id TEXT PRIMARY KEY, status TEXT NOT NULL, "
                        "record TEXT NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS evidence (cell_id TEXT PRIMARY KEY, data BLOB NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS claims (cell_id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                        "expires REAL NOT NULL)")
        version = self.meta("schema_version")
        if version is None and self.db.execute("SELECT 1 FROM records LIMIT 1").fetchone():
            version = 1  # records from before the version was written
        if version is None:  # a new store
            self.set_meta("schema_version", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            self.db.close()
            raise UserError(f"{path}: a results store of schema version {version}; this tlbench reads "
                            f"version {SCHEMA_VERSION}; {AFRESH}")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _writing(self):
        """One transaction. A write the folder refuses (a full disk, a folder or file turned
        read-only, an I/O error) is a :class:`StoreFault` naming the folder; what was committed
        before stays readable."""
        try:
            with self.db:
                yield
        except sqlite3.OperationalError as exc:
            raise StoreFault(f"{self.directory}: cannot write the results store ({exc}); {RESUME}") from None

    def put(self, record: CellRecord) -> None:
        """Insert or replace one cell's record and its evidence, atomically."""
        with self._writing():
            self.db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
                            (record.cell_id, record.status, record.to_json()))
            self.db.execute("DELETE FROM evidence WHERE cell_id = ?", (record.cell_id,))
            if record.evidence is not None:
                self.db.execute("INSERT INTO evidence VALUES (?, ?)", (record.cell_id, record.evidence))

    def evidence(self, cell_ids=None) -> dict[str, dict[str, SplitEvidence]]:
        """Per-example evidence of the cells ``cell_ids`` (default: every cell that has some),
        ``cell_id -> split -> SplitEvidence``."""
        if cell_ids is None:
            rows = self.db.execute("SELECT cell_id, data FROM evidence").fetchall()
        else:  # only the blobs asked for leave SQLite, in chunks under its limit on parameters
            wanted, rows = list(dict.fromkeys(cell_ids)), []
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                rows += self.db.execute(f"SELECT cell_id, data FROM evidence WHERE cell_id IN "
                                        f"({', '.join('?' * len(chunk))})", chunk).fetchall()
        return {cell_id: evidence_mod.from_bytes(blob) for cell_id, blob in rows}

    def claim(self, cell_id: str, owner: str, seconds: float, allow_finished: bool = False) -> bool:
        """Take the lease on ``cell_id`` for ``seconds`` unless it is finished (and not
        ``allow_finished``) or another owner's lease on it is still running."""
        now = time.time()
        with self._writing():
            self.db.execute("BEGIN IMMEDIATE")
            if not allow_finished and self.is_finished(cell_id):
                return False
            row = self.db.execute("SELECT owner, expires FROM claims WHERE cell_id = ?", (cell_id,)).fetchone()
            if row and row[0] != owner and row[1] > now:
                return False
            self.db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", (cell_id, owner, now + seconds))
            return True

    def renew(self, owner: str, seconds: float) -> None:
        with self._writing():
            self.db.execute("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + seconds, owner))

    def release(self, cell_id: str, owner: str) -> None:
        with self._writing():
            self.db.execute("DELETE FROM claims WHERE cell_id = ? AND owner = ?", (cell_id, owner))

    def release_all(self, owner: str) -> None:
        with self._writing():
            self.db.execute("DELETE FROM claims WHERE owner = ?", (owner,))

    def is_finished(self, cell_id: str) -> bool:
        marks = ",".join("?" * len(FINISHED))
        return self.db.execute(f"SELECT 1 FROM records WHERE cell_id = ? AND status IN ({marks})",
                               (cell_id, *FINISHED)).fetchone() is not None

    def finished(self) -> set[str]:
        marks = ",".join("?" * len(FINISHED))
        rows = self.db.execute(f"SELECT cell_id FROM records WHERE status IN ({marks})", FINISHED)
        return {r[0] for r in rows}

    def set_meta(self, key: str, value) -> None:
        with self._writing():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def records(self, plan_only: bool = True) -> list[CellRecord]:
        """Stored records, by default only those of the cells in the latest run's plan."""
        records = [CellRecord.model_validate_json(r[0])
                   for r in self.db.execute("SELECT record FROM records ORDER BY rowid")]
        plan = self.meta("plan")
        if plan_only and plan is not None:
            # labels may have been renamed since the cell ran
            records = [r.model_copy(update=plan[r.cell_id]) for r in records if r.cell_id in plan]
        return records

    def frame(self, plan_only: bool = True) -> pd.DataFrame:
        """One row per cell: the identifying columns, every metric, every cost field
        (docs/reference/results.md)."""
        records = self.records(plan_only)
        return pd.DataFrame([flatten(r) for r in records], columns=columns(records))

    def export(self) -> tuple[Path, Path]:
        """Write ``results.csv`` and ``summary.md`` next to the database."""
        frame = self.frame()
        csv_path = self.directory / "results.csv"
        frame.to_csv(csv_path, index=False)
        summary_path = self.directory / "summary.md"
        summary_path.write_text(summary_markdown(frame, self.meta("suite_name", self.directory.name),
                                                 self.evidence()))
        return csv_path, summary_path


def score_summaries(frame: pd.DataFrame, evidence=None) -> dict[str, pd.DataFrame]:
    """Per task of the records (:mod:`tlbench.tasks`): its test score (``test_<score>``: accuracy for
    classification), mean and 95% interval (:func:`tlbench.analysis.selection.summarize_seeds`, the
    report's statistics) of the variants the seeds chose on validation (``val_<score>``), per
    backbone × dataset × strategy × label fraction, over the suite's own cells (the budget check's
    re-runs apart)."""
    if "budget" in frame.columns:
        frame = frame[pd.to_numeric(frame["budget"], errors="coerce").fillna(1.0) == 1.0]
    task_of = task_column(frame)
    out = {}
    for task in tasks.in_order(task_of):
        score = tasks.get(task).score
        out[task] = summarize_seeds(select_variants(frame[task_of == task], by=f"val_{score}"), f"test_{score}",
                                    evidence)
    return out


def summary_tables(frame: pd.DataFrame, evidence=None) -> dict[str, pd.DataFrame]:
    """:func:`score_summaries` as ``tlbench run`` prints them: the ``test_<score>`` column reads
    "mean [low, high]"."""
    tables = {}
    for task, table in score_summaries(frame, evidence).items():
        metric = f"test_{tasks.get(task).score}"
        table[metric] = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if hi == hi else f"{m:.3f}"
                         for m, lo, hi in zip(table["mean"], table["ci_low"], table["ci_high"])]
        tables[task] = table[["backbone", "dataset", "strategy", "label_fraction", "variant", metric, "seeds"]]
    return tables


def summary_markdown(frame: pd.DataFrame, name: str, evidence=None) -> str:
    counts = frame["status"].value_counts().to_dict()
    lines = [f"# {name}", "",
             "Each task's test score (classification: accuracy), mean over seeds [95% interval, counting the "
             "seeds' spread and the test set's] of the variant each seed chose on its validation split (for a "
             "domain-shift pair: on the target domain's test split, variant chosen on source validation).", "",
             "cells: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "failed", "diverged", "skipped")), ""]
    tables = {task: table for task, table in summary_tables(frame, evidence).items() if not table.empty}
    for i, (task, table) in enumerate(tables.items()):
        lines += ([""] if i else []) + ([f"## {task}", ""] if len(tables) > 1 else []) + [table.to_markdown(index=False)]
    if not tables:
        lines.append("_no successful cells_")
    problems = frame[frame["status"].isin(["failed", "diverged", "skipped"])]
    if not problems.empty:
        lines += ["", "## Not ok", ""]
        lines += [f"- `{r.cell_id}` {r.backbone} · {r.dataset} · {r.strategy} {r.variant} · "
                  f"{r.label_fraction:g} · seed {r.seed}: **{r.status}** {r.error or ''}"
                  for r in problems.itertuples()]
    return "\n".join(lines) + "\n"
