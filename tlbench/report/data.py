"""The records frame: checks, filters, selection and the statistics every table and figure shares.

Everything here works on the stored records only. Hyper-parameter variants are chosen on
validation accuracy by :func:`tlbench.analysis.selection.select_variants`; test numbers of the chosen
variant are then summarised over seeds by :func:`tlbench.analysis.selection.summarize_seeds`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tlbench.contract.errors import UserError
from tlbench.report.style import ADAPTATION, BASELINE, ORACLE, ROLES, TRANSFER
from tlbench.analysis.selection import GROUP, select_variants, task_column
from tlbench.plan.suite import FILTER_KEYS
from tlbench.tasks import task as tasks

REQUIRED = ["cell_id", "backbone", "dataset", "strategy", "variant", "seed", "label_fraction",
            "status", "error"]
NUMERIC = ["test_acc", "test_macro_f1", "val_acc", "source_test_acc", "target_val_acc",
           "wall_seconds", "train_seconds", "examples_per_second", "peak_memory_mb",
           "trainable_params", "total_params"]


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """A clean copy: required columns present, types fixed, optional columns filled with NaN."""
    if frame is None or len(frame) == 0:
        raise UserError("no records to report: the results hold no cells yet "
                        "(run `tlbench run` first)")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise UserError(f"the records lack column(s) {', '.join(missing)}; "
                        "they were not written by this version of tlbench")
    df = frame.copy()
    for col in NUMERIC:
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df.columns else np.nan
    for col in ("cell_id", "backbone", "dataset", "strategy", "variant", "status", "device"):
        if col in df.columns:
            df[col] = df[col].astype(object).fillna("").astype(str)
    df["error"] = df["error"].astype(object).fillna("").astype(str)  # object: a results.csv read back has float NaN
    # The declared role of each record's strategy. Records written before roles were stored
    # carry none: they are taken as "transfer" (an oracle among them is then not recognised).
    role = df["role"] if "role" in df.columns else pd.Series(None, index=df.index, dtype=object)
    df["role"] = [r if r in ROLES else TRANSFER for r in role]
    df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
    df["label_fraction"] = pd.to_numeric(df["label_fraction"], errors="coerce").astype(float)
    # each record's task (tlbench.tasks); records before tasks were stored are classification's
    df["task"] = task_column(df)
    if "has_target_domain" not in df.columns:
        df["has_target_domain"] = False
    df["has_target_domain"] = df["has_target_domain"].map(_truthy)
    # the compute multiple a cell trained at: 1 for the suite's own cells, more for the budget
    # check's re-runs (absent in older records)
    df["budget"] = (pd.to_numeric(df["budget"], errors="coerce").fillna(1.0)
                    if "budget" in df.columns else 1.0)
    # the stopping rule a cell's loop followed: "budget" (its planned steps: equal compute) or
    # "plateau"; records before 0.4 trained their planned steps
    df["stop"] = df["stop"].fillna("budget").astype(str) if "stop" in df.columns else "budget"
    # A "finished" row without its task's test score cannot be averaged: treat it as failed, visibly.
    for task in df["task"].unique():
        name = tasks.get(task).score
        score = f"test_{name}"
        lacking = [c for c in (score, f"val_{name}") if c not in frame.columns]
        if lacking:
            raise UserError(f"the records lack column(s) {', '.join(lacking)} of their task {task}; "
                            "they were not written by this version of tlbench")
        df[score] = pd.to_numeric(df[score], errors="coerce")
        bad = (df["task"] == task) & (df["status"] == "ok") & df[score].isna()
        if bad.any():
            df.loc[bad, "status"] = "failed"
            df.loc[bad & (df["error"] == ""), "error"] = f"record has status ok but no {score}"
    return df.reset_index(drop=True)


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "y", "t"}
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False


def apply_filters(frame: pd.DataFrame, filters: dict[str, list[str]] | None) -> pd.DataFrame:
    """Keep the rows whose dataset/backbone/strategy is among the given names.

    ``filters`` maps "dataset", "backbone" or "strategy" to a list of names (a name may also
    be a comma-separated list). Unknown keys or names raise :class:`UserError` listing the
    valid ones; a filter that leaves nothing raises one too.
    """
    if not filters:
        return frame
    mask = pd.Series(True, index=frame.index)
    used = []
    for key, values in filters.items():
        if key not in FILTER_KEYS:
            raise UserError(f"unknown filter {key!r}; valid filters: {', '.join(FILTER_KEYS)}")
        if isinstance(values, str):
            values = [values]
        names = [n.strip() for v in (values or []) for n in str(v).split(",") if n.strip()]
        if not names:
            continue
        valid = sorted(frame[key].dropna().astype(str).unique())
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise UserError(f"unknown {key} {', '.join(map(repr, unknown))} in --filter; "
                            f"valid {key}s: {', '.join(valid) or '(none)'}")
        mask &= frame[key].astype(str).isin(names)
        used.append(f"{key}={','.join(names)}")
    out = frame[mask]
    if out.empty:
        raise UserError(f"--filter {' '.join(used)} matches no records: "
                        "no cell has that combination")
    return out.reset_index(drop=True)


def describe_filters(filters: dict[str, list[str]] | None) -> str:
    if not filters:
        return ""
    parts = []
    for key, values in filters.items():
        if isinstance(values, str):
            values = [values]
        names = [n.strip() for v in (values or []) for n in str(v).split(",") if n.strip()]
        if names:
            parts.append(f"{key} = {', '.join(names)}")
    return "; ".join(parts)


def roles(frame: pd.DataFrame) -> dict[str, str]:
    """Strategy label -> declared role (the first record's, for a label seen more than once)."""
    if "role" not in frame.columns:
        return {}
    return frame.drop_duplicates("strategy").set_index("strategy")["role"].to_dict()


def oracles(frame: pd.DataFrame) -> set[str]:
    """The labels of strategies whose declared role is ``oracle``."""
    return {s for s, r in roles(frame).items() if r == ORACLE}


SHIFT_RULE = ("Source-only: of the transfer strategies run on the pair, the one with the best "
              "mean source-validation accuracy (no target labels take part in the choice); one "
              "row per adaptation strategy; control: the baseline-role strategy run on the pair "
              "(e.g. dann_source_only, DANN's own recipe with lambda = 0), best on source "
              "validation, so that adaptation − control is what the adversary itself adds; "
              "oracle: the oracle strategy with the best mean target-validation accuracy.")


@dataclass(frozen=True)
class ShiftPick:
    """The strategies compared on one source -> target pair, backbone and label fraction."""
    source_only: str | None
    adaptation: tuple[str, ...]
    oracle: str | None
    control: str | None = None


def shift_picks(selected: pd.DataFrame, shift: dict[str, bool]) -> dict[tuple, ShiftPick]:
    """Per (dataset, backbone, label fraction) of a shift pair (``shift[dataset]``), by role:
    the source-only transfer strategy (best mean ``val_acc``, which is source validation for a
    transfer strategy), every adaptation strategy, and the oracle (best mean ``val_acc``, its
    target validation). Keys with neither an adaptation nor an oracle strategy are left out."""
    rows = selected[selected["dataset"].map(lambda d: shift.get(d, False))]
    picks = {}
    for key, g in rows.groupby(["dataset", "backbone", "label_fraction"], sort=True):
        val = g.groupby(["strategy", "role"])["val_acc"].mean().reset_index()

        def best(role):
            cands = val[val["role"] == role].sort_values(["val_acc", "strategy"],
                                                          ascending=[False, True])
            return cands["strategy"].iloc[0] if len(cands) else None
        adaptation = tuple(sorted(val.loc[val["role"] == ADAPTATION, "strategy"]))
        pick = ShiftPick(best(TRANSFER), adaptation, best(ORACLE), best(BASELINE))
        if pick.adaptation or pick.oracle:
            picks[key] = pick
    return picks


def shift_rows(frame: pd.DataFrame, picks: dict[tuple, ShiftPick]) -> pd.DataFrame:
    """The rows of ``frame`` of the strategies in ``picks`` (source-only, adaptation, oracle)."""
    keep = {(*k, s) for k, p in picks.items()
            for s in (p.source_only, *p.adaptation, p.oracle, p.control) if s is not None}
    mask = [(d, b, f, s) in keep for d, b, f, s in
            zip(frame["dataset"], frame["backbone"], frame["label_fraction"], frame["strategy"])]
    return frame[mask]


def at_budget(frame: pd.DataFrame, budget: float = 1.0) -> pd.DataFrame:
    """The rows trained at ``budget`` times the suite's compute: 1, the suite's own cells (what
    every table reports); more, the budget check's re-runs of them."""
    return frame[frame["budget"] == budget]


def equal_compute(rows: pd.DataFrame) -> bool:
    """Whether the trained cells of ``rows`` (those with a training loop) ran a fixed budget of
    steps (``stop = "budget"``) rather than each to its own plateau."""
    trained = rows[rows["steps"].notna()] if "steps" in rows.columns else rows.iloc[0:0]
    return bool((trained["stop"] == "budget").any())


def check_budgets(frame: pd.DataFrame) -> list[float]:
    """The budgets of the budget check's re-runs in ``frame`` (none: no check was run)."""
    return sorted(b for b in frame["budget"].unique() if b != 1.0)


def select(frame: pd.DataFrame, by: str = "val_acc") -> pd.DataFrame:
    """The ok rows of the variant chosen on validation (``by``: the task's ``val_<score>``), per group
    (all seeds)."""
    return select_variants(frame, by=by)


def no_success_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """Groups (backbone, dataset, strategy, label fraction) without one ok record.

    Columns: the group keys, ``status`` (the statuses seen, e.g. "failed×3"), ``records``.
    """
    rows = []
    for key, g in frame.groupby(GROUP, dropna=False, sort=True):
        if (g["status"] == "ok").any():
            continue
        counts = g["status"].value_counts()
        summary = ", ".join(f"{s}×{c}" for s, c in counts.items())
        rows.append(list(key) + [summary, len(g)])
    return pd.DataFrame(rows, columns=GROUP + ["status", "records"])


def error_summary(error: str, limit: int = 240) -> str:
    """The last non-empty line of an error (a traceback's message), shortened."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fraction_label(f: float) -> str:
    return f"{100 * f:g}%"
