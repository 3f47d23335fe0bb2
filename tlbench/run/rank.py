"""Rank a suite's backbones per dataset by transferability scores, before any fine-tuning.

:func:`rank_backbones` is pure orchestration: the caller supplies ``features_of(backbone, dataset)``
(the worker's cached frozen features); every scorer plugin is computed on the features of the
dataset's training split, and the backbones are ranked per score per dataset.
:func:`worker_features` is the ``features_of`` the command line uses: the run's own
:class:`tlbench.run.worker.Worker`, whose features persist in ``<results dir>/features``.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from tlbench.train.features import FeatureCache, Features
from tlbench.plugins.records import ScorerPlugin
from tlbench.contract.cells import Entry
from tlbench.plan.suite import Suite

META_KEY = "transferability"

#: ``features_of(backbone, dataset)``: the features, or None where there are none to score
FeaturesOf = Callable[[Entry, Entry], Features | None]


def suite_entries(suite: Suite) -> tuple[list[Entry], list[Entry]]:
    """The suite's distinct backbone and dataset entries, in suite order."""
    backbones, datasets = {}, {}
    for cell in suite.cells:
        backbones.setdefault(cell.backbone.label, cell.backbone)
        datasets.setdefault(cell.dataset.label, cell.dataset)
    return list(backbones.values()), list(datasets.values())


def collect_scorers(pm) -> list[ScorerPlugin]:
    """Every scorer the plugins of ``pm`` (a plugin manager or a :class:`tlbench.plugins.host.Host`) register."""
    from tlbench.plugins.host import Host
    return list(Host.of(pm).records("scorer").values())


def rank_backbones(suite: Suite, registry, features_of: FeaturesOf,
                   scorers: Iterable[ScorerPlugin] | None = None,
                   labels_of: Callable[[Entry], np.ndarray] | None = None) -> pd.DataFrame:
    """One row per (dataset, backbone) of ``suite``: every scorer's value on the features of the
    dataset's training split and the backbone's rank by it within the dataset (1 = best).

    Columns: ``dataset``, ``backbone``, ``n_train``, ``feature_dim``, then ``<scorer>`` and
    ``<scorer>_rank`` per scorer, and ``notes``: why a value is NaN (the scorer needs source logits and
    the backbone has no source head; the backbone cannot read the dataset; the scorer raised).
    ``scorers`` defaults to the registered ones; ``labels_of(dataset_entry)`` (the training split's
    labels, in the order of the features) defaults to loading the dataset through the registry.
    """
    scorers = list(scorers) if scorers is not None else list(registry.records["scorer"].values())
    labels_of = labels_of or _registry_labels(registry)
    backbones, datasets = suite_entries(suite)
    rows = []
    for dataset in datasets:
        labels = None
        for backbone in backbones:
            row = {"dataset": dataset.label, "backbone": backbone.label, "n_train": 0, "feature_dim": 0}
            notes = []
            reason = _incompatible(registry, backbone, dataset)
            features = None if reason else features_of(backbone, dataset)
            if features is None:
                row.update({s.name: math.nan for s in scorers})
                notes.append(reason or "no features: none were extracted for this pair")
            else:
                if labels is None:
                    labels = np.asarray(labels_of(dataset)).astype(np.int64)
                train = features.splits["train"].detach().cpu().to(torch.float64).numpy()
                logits = (features.source_logits or {}).get("train")
                logits = None if logits is None else logits.detach().cpu().to(torch.float64).numpy()
                if len(train) != len(labels):
                    raise ValueError(f"{backbone.label} on {dataset.label}: {len(train)} training features "
                                     f"but {len(labels)} labels")
                row.update(n_train=len(train), feature_dim=train.shape[1])
                no_logits = []
                for scorer in scorers:
                    if scorer.needs_source_logits and logits is None:
                        row[scorer.name] = math.nan
                        no_logits.append(scorer.name)
                        continue
                    row[scorer.name], error = _score(scorer, train, labels, logits)
                    if error:
                        notes.append(f"{scorer.name}: {error}")
                if no_logits:
                    notes.insert(0, f"{', '.join(no_logits)}: no source head (source-task logits)")
            row["notes"] = "; ".join(notes)
            rows.append(row)
    frame = pd.DataFrame(rows, columns=["dataset", "backbone", "n_train", "feature_dim",
                                        *[s.name for s in scorers], "notes"])
    for scorer in scorers:
        ranks = frame.groupby("dataset", sort=False)[scorer.name].rank(
            ascending=not scorer.higher_is_better, method="min")
        frame.insert(frame.columns.get_loc(scorer.name) + 1, f"{scorer.name}_rank", ranks.astype("Int64"))
    return frame


def _score(scorer: ScorerPlugin, features, labels, logits) -> tuple[float, str | None]:
    """(value, None), or (NaN, the error) when the scorer raises or returns a non-finite number."""
    try:
        value = float(scorer.score(features, labels, logits))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        return math.nan, f"{type(exc).__name__}: {message}".rstrip(": ")
    if not math.isfinite(value):
        return math.nan, f"not finite ({value})"
    return value, None


def _incompatible(registry, backbone: Entry, dataset: Entry) -> str | None:
    try:
        b = registry.get("backbone", backbone.plugin)
        d = registry.get("dataset", dataset.plugin)
    except Exception:
        return None
    from tlbench.modalities.modality import mismatch
    if getattr(d, "task", "classification") != "classification":
        return (f"dataset {dataset.label!r} is {d.task}: transferability scores rank backbones for classification "
                "(features against one label per example)")
    return mismatch(b, d, backbone.label, dataset.label)


def transferability_entries(frame: pd.DataFrame, scorers: Iterable[ScorerPlugin]) -> list[dict]:
    """The store's ``transferability`` meta entry: ``[{dataset, backbone, scorer, value,
    higher_is_better}]`` (value None where the score is missing)."""
    out = []
    for row in frame.to_dict("records"):
        for scorer in scorers:
            value = row.get(scorer.name)
            out.append({"dataset": row["dataset"], "backbone": row["backbone"], "scorer": scorer.name,
                        "value": None if value is None or pd.isna(value) else float(value),
                        "higher_is_better": scorer.higher_is_better})
    return out


def store_scores(store, entries: list[dict]) -> list[dict]:
    """Merge ``entries`` into the store's ``transferability`` meta entry: a (dataset, backbone,
    scorer) computed now replaces the stored one; the others are kept. Returns what is stored."""
    key = lambda e: (e["dataset"], e["backbone"], e["scorer"])  # noqa: E731
    fresh = {key(e) for e in entries}
    kept = [e for e in store.meta(META_KEY, []) or [] if key(e) not in fresh]
    merged = kept + list(entries)
    store.set_meta(META_KEY, merged)
    return merged


# ---------------------------------------------------------------------------- in-process features

def _registry_labels(registry) -> Callable[[Entry], np.ndarray]:
    cache: dict[str, np.ndarray] = {}

    def labels_of(dataset: Entry) -> np.ndarray:
        if dataset.label not in cache:
            from tlbench.train import data as data_mod
            record = registry.get("dataset", dataset.plugin)
            splits = data_mod.prepare(record.load(dataset.options), dataset.dedupe is not False, dataset.label)
            cache[dataset.label] = splits["train"].labels.numpy()
        return cache[dataset.label]
    return labels_of


class WorkerFeatures:
    """``features_of(backbone, dataset)`` for a suite through the run's own
    :class:`tlbench.run.worker.Worker` (``Worker.features(cell)``): the features of every split of the
    dataset (and source-head logits), extracted once per (backbone, dataset, precision) and kept in
    the persisted :class:`FeatureCache` under ``<results dir>/features``, the same files
    ``tlbench run`` reads and writes. ``labels(dataset)`` gives the training split's labels."""

    def __init__(self, suite: Suite, registry, device: str = "auto", stored_only: bool = False):
        from tlbench.train import engine
        from tlbench.run.worker import Worker

        self.suite = suite
        self.worker = Worker(registry, engine.resolve_device(device), suite.results_dir)
        if stored_only:
            self.worker.feature_cache = StoredFeatures(self.worker.feature_cache.directory)
        self.cache: FeatureCache = self.worker.feature_cache

    def _cell(self, backbone: Entry | None, dataset: Entry):
        cells = [c for c in self.suite.cells if c.dataset.label == dataset.label
                 and (backbone is None or c.backbone.label == backbone.label)]
        return next((c for c in cells if not c.skip_reason), cells[0])

    def __call__(self, backbone: Entry, dataset: Entry) -> Features | None:
        return self.worker.features(self._cell(backbone, dataset))

    def labels(self, dataset: Entry) -> np.ndarray:
        _, _, splits = self.worker.dataset(self._cell(None, dataset))
        return splits["train"].labels.cpu().numpy()


def worker_features(suite: Suite, registry, device: str = "auto",
                    stored_only: bool = False) -> WorkerFeatures:
    """A ``features_of`` for :func:`rank_backbones` (see :class:`WorkerFeatures`);
    ``stored_only``: extract nothing, give None where the cache holds no features."""
    return WorkerFeatures(suite, registry, device, stored_only)


class StoredFeatures(FeatureCache):
    """A :class:`FeatureCache` that only reads: ``get`` returns the stored features or None,
    never computes."""

    def get(self, key: dict, compute) -> Features | None:
        found = self.load(key)
        self.hits += found is not None
        return found


def score_run(suite: Suite, registry, scorers: Iterable[ScorerPlugin], store) -> int:
    """After ``tlbench run``: the transferability scores of every (backbone, dataset) pair whose
    features the run extracted (persisted in ``<results dir>/features``; nothing is extracted
    here), merged into the store as ``tlbench rank`` stores them. Returns the pairs scored."""
    scorers = list(scorers)
    features_of = worker_features(suite, registry, stored_only=True)
    frame = rank_backbones(suite, registry, features_of, scorers, labels_of=features_of.labels)
    scored = frame[frame["n_train"] > 0]
    if len(scored):
        store_scores(store, transferability_entries(scored, scorers))
    return len(scored)


# ---------------------------------------------------------------------------- terminal tables

def format_score(value: float) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.4g}"


def rich_tables(frame: pd.DataFrame, scorers: Iterable[ScorerPlugin]) -> list:
    """One :class:`rich.table.Table` per dataset: backbones as rows, scores as columns (rank in
    brackets), the best value of each score in bold; the notes as the caption."""
    from rich.markup import escape
    from rich.table import Table

    scorers = list(scorers)
    tables = []
    for dataset, sub in frame.groupby("dataset", sort=False):
        arrows = {s.name: "↑" if s.higher_is_better else "↓" for s in scorers}
        table = Table(title=f"{escape(str(dataset))}: transferability of each backbone (training split, "
                            f"n = {int(sub['n_train'].max())}; ↑ higher is better)")
        table.add_column("backbone")
        for s in scorers:
            table.add_column(f"{s.name} {arrows[s.name]}", justify="right")
        for row in sub.to_dict("records"):
            cells = [escape(row["backbone"])]
            for s in scorers:
                text = format_score(row[s.name])
                rank = row[f"{s.name}_rank"]
                if not pd.isna(rank):
                    text += f" ({int(rank)})"
                    if int(rank) == 1:
                        text = f"[bold]{text}[/bold]"
                cells.append(text)
            table.add_row(*cells)
        by_note: dict[str, list[str]] = {}
        for r in sub.to_dict("records"):
            for note in filter(None, r["notes"].split("; ")):
                by_note.setdefault(note, []).append(r["backbone"])
        if by_note:
            table.caption = "\n".join(escape(f"{', '.join(names)}: {note}") for note, names in by_note.items())
        tables.append(table)
    return tables
