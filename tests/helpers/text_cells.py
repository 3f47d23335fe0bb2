"""Tiny text cells for the text tests: a 2-layer random BERT saved with all-MiniLM-L6-v2's
tokenizer, generated two-class (and two-domain) CSV files, and a CellContext on tokenised splits."""
from __future__ import annotations

import contextlib
import random
from pathlib import Path

import torch

import tlbench
from tlbench.train import data as data_mod
from tlbench.train import engine
from tlbench.train.context import CellContext, Features, count_params
from tlbench.contract.cells import TrainOptions

GOOD = ["good", "great", "lovely", "superb", "fine", "happy", "excellent", "nice"]
BAD = ["bad", "awful", "poor", "terrible", "sad", "boring", "ugly", "worse"]
FILLER = ["the", "film", "phone", "day", "was", "really", "quite", "a", "very", "and", "it", "today", "show"]


def tiny_bert(folder: Path) -> Path:
    """A random 2-layer BERT (hidden 32) and MiniLM's tokenizer saved in ``folder`` (safetensors)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tlbench.builtins.backbones.transformers import MINILM, MINILM_FILES
    if (folder / "config.json").exists():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(MINILM.extract(MINILM_FILES))
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=len(tokenizer), max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def sentences(n: int, seed: int = 0, domain: str | None = None) -> list[tuple[str, str]]:
    """``n`` (text, label) rows: a label's words among filler; a domain adds its own words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.sample(FILLER, rng.randint(2, 6)) + rng.sample(GOOD if label == "pos" else BAD, 2)
        if domain == "tweets":
            words += ["lol", "#wow", "@you"]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_csv(path: Path, n: int = 60, domains: bool = False) -> Path:
    import csv
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"] + (["domain"] if domains else []))
        for domain in (["reviews", "tweets"] if domains else [None]):
            for text, label in sentences(n, seed=0 if domain != "tweets" else 1, domain=domain):
                writer.writerow([text, label] + ([domain] if domains else []))
    return path


def encoded_splits(loaded: tlbench.LoadedDataset, encoder) -> dict[str, tlbench.Split]:
    """What the worker gives a cell: the dataset's splits, tokenised in one encoder call."""
    splits = data_mod.prepare(loaded)
    encoded = encoder({name: s.inputs for name, s in splits.items()})
    return {name: tlbench.Split(encoded[name], s.labels) for name, s in splits.items()}


def make_ctx(build, splits: dict[str, tlbench.Split], num_classes: int, epochs: int = 1, batch_size: int = 16,
             min_steps: int = 0, seed: int = 0, label_fraction: float = 1.0) -> CellContext:
    index = data_mod.label_subset(splits["train"].labels, label_fraction, seed)
    torch.manual_seed(seed)
    features = {}

    def features_cache(make_backbone):
        if not features:
            backbone = make_backbone()
            feats = {name: engine.predict(backbone, s, 64, contextlib.nullcontext,
                                          call=backbone.extract) for name, s in splits.items()}
            features["f"] = Features(feats, count_params(backbone)[1], 0.0)
        return features["f"]
    return CellContext(data={**splits, "train": splits["train"].subset(index)}, train_index=index,
                       num_classes=num_classes, device=torch.device("cpu"),
                       train=TrainOptions(epochs=epochs, batch_size=batch_size, min_steps=min_steps),
                       seed=seed, build=build, features_cache=features_cache, label_fraction=label_fraction)
