"""Your own text classification data: ``textfile`` (a CSV / TSV / JSONL / Parquet file) and
``hf_text`` (a Hugging Face ``datasets`` dataset by name, or its packaged ``csv`` / ``json`` /
``parquet`` builders on local files).

Both go through :func:`frame_to_dataset`: a text column, a label column, optionally a domain
column whose ``source`` and ``target`` values make a domain-shift pair, and optionally a split
column (``train`` / ``val`` (or ``validation``, ``dev``) / ``test``); without one the core carves a
fixed, seeded, stratified split. Every mistake is a one-line :class:`tlbench.UserError` naming the
file, and the column or first bad row, raised when the data is loaded (before anything trains).
"""
from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

import tlbench
from tlbench.contract.errors import UserError
from tlbench.contract.sampling import max_per_class_field, per_class_index, seed_field

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import torch

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val", "test": "test"}
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".parquet": "parquet", ".pq": "parquet"}


class ColumnOptions(tlbench.Options):
    text_column: str = Field("text", description="column holding the texts")
    label_column: str = Field("label", description="column holding the class labels (names or numbers)")
    split_column: str | None = Field(None, description="column with train / val (validation, dev) / test per row; "
                                                       "default: a fixed seeded stratified 65/15/20 split")
    max_per_class: int | None = max_per_class_field()
    seed: int = seed_field()


class DomainOptions(tlbench.Options):
    domain_column: str = Field(description="column naming each row's domain")
    source: str = Field(description="domain_column value of the source (labelled) domain")
    target: str = Field(description="domain_column value of the target (shifted) domain; its labels are seen "
                                    "only by oracles")

    @model_validator(mode="after")
    def _two_domains(self):
        if self.source == self.target:
            raise ValueError("source and target must be different domain values")
        return self


class TextFileOptions(ColumnOptions):
    path: str = Field(description="a .csv, .tsv, .jsonl or .parquet file, one text per row")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = Field("auto", description="file format; auto: "
                                                                                          "from the extension")
    encoding: str = Field("utf-8", description="text encoding of CSV / TSV / JSONL files")


class TextFileShiftOptions(DomainOptions, TextFileOptions):
    pass


class HfTextOptions(ColumnOptions):
    name: str = Field(description='a Hugging Face datasets name (e.g. "SetFit/sst2"; needs the hub or its cache), '
                                  'or a packaged builder ("csv", "json", "parquet") with data_files')
    config: str | None = Field(None, description="the dataset's configuration (subset) name")
    data_files: str | list[str] | dict[str, str | list[str]] | None = Field(
        None, description='local files for a packaged builder: a path, a list, or {"train": ..., "test": ...}')
    revision: str | None = Field(None, description="a hub revision (branch, tag or commit)")


class HfTextShiftOptions(DomainOptions, HfTextOptions):
    pass


# ---------------------------------------------------------------------------------------------
# shared: a table -> LoadedDataset


def frame_to_dataset(frame: pd.DataFrame, where: str, options: ColumnOptions,
                     class_names: list[str] | None = None) -> tlbench.LoadedDataset:
    """Validate the columns and rows of ``frame`` and turn it into a :class:`tlbench.LoadedDataset`
    of raw texts (``list[str]``). ``class_names``: the label order when the source defines it."""
    import torch

    from tlbench.modalities.text import check_texts, label_codes

    columns = [str(c) for c in frame.columns]
    for key in ("text_column", "label_column", "domain_column", "split_column"):
        column = getattr(options, key, None)
        if column is not None and column not in columns:
            close = difflib.get_close_matches(column, columns, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            present = ", ".join(c for c in columns if c != "__split__")  # not hf_text's own split marker
            raise UserError(f"{where}: no column {column!r} ({key}){hint} columns present: {present}")
    if len(frame) == 0:
        raise UserError(f"{where}: no rows")
    texts = check_texts(frame[options.text_column].tolist(), where, f"text column {options.text_column!r}")
    classes, labels = label_codes(frame[options.label_column].tolist(), where, options.label_column, class_names)

    rows = torch.arange(len(frame))
    split_of = _split_names(frame, where, options.split_column)
    if getattr(options, "domain_column", None) is None:
        return tlbench.LoadedDataset(classes, _parts(texts, labels, rows, split_of, where, options))
    domains = frame[options.domain_column].astype(str).str.strip().tolist()
    present = sorted(set(domains))
    for key in ("source", "target"):
        if getattr(options, key) not in present:
            raise UserError(f"{where}: {key} = {getattr(options, key)!r} is not a value of column "
                            f"{options.domain_column!r}; values present: {', '.join(present[:20])}")
    pick = lambda value: rows[torch.tensor([d == value for d in domains])]  # noqa: E731
    return tlbench.LoadedDataset(classes, _parts(texts, labels, pick(options.source), split_of, where, options),
                                 _parts(texts, labels, pick(options.target), split_of, where, options))


def _split_names(frame: pd.DataFrame, where: str, column: str | None) -> list[str] | None:
    if column is None:
        return None
    names = []
    for i, value in enumerate(frame[column].tolist()):
        name = SPLIT_NAMES.get(str(value).strip().lower())
        if name is None:
            raise UserError(f"{where}: row {i + 1}: split column {column!r} has {value!r}; use train, val "
                            "(validation, dev) or test")
        names.append(name)
    return names


def _parts(texts: list[str], labels: torch.Tensor, rows: torch.Tensor, split_of: list[str] | None,
           where: str, options: ColumnOptions) -> dict[str, tlbench.Split]:
    import torch

    groups = {"all": rows} if split_of is None else {}
    if split_of is not None:
        for name in ("train", "val", "test"):
            members = rows[torch.tensor([split_of[i] == name for i in rows.tolist()], dtype=torch.bool)]
            if len(members):
                groups[name] = members
        if set(groups) not in ({"train", "test"}, {"train", "val", "test"}):
            raise UserError(f"{where}: split column {options.split_column!r} gives {sorted(groups)}; a dataset "
                            "needs train and test (and optionally val)")
    parts = {}
    for name, members in groups.items():
        members = members[torch.as_tensor(per_class_index(labels[members].numpy(), options.max_per_class,
                                                          options.seed))]
        parts[name] = tlbench.Split([texts[i] for i in members.tolist()], labels[members])
    return parts


# ---------------------------------------------------------------------------------------------
# textfile


def read_table(path: str, fmt: str = "auto", encoding: str = "utf-8") -> pd.DataFrame:
    """A CSV / TSV / JSONL / Parquet file as a DataFrame of its raw values (CSV cells as strings;
    "NA" and "null" stay text, only an empty cell is missing). The last few tables read are kept
    (keyed by the file's size and modification time), so the preflight's read serves the cells;
    callers must not change the frame."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"textfile: {path} does not exist")
    stat = file.stat()
    return _read_table(path, str(file.resolve()), stat.st_size, stat.st_mtime_ns, fmt, encoding)


@functools.lru_cache(maxsize=4)
def _read_table(path: str, file: str, size: int, mtime_ns: int, fmt: str, encoding: str) -> pd.DataFrame:
    import pandas as pd

    file = Path(file)
    if fmt == "auto":
        fmt = FORMATS.get(file.suffix.lower())
        if fmt is None:
            raise UserError(f"textfile: {path}: unknown extension {file.suffix!r}; use .csv, .tsv, .jsonl or "
                            '.parquet, or set format = "csv" | "tsv" | "jsonl" | "parquet"')
    try:
        if fmt in ("csv", "tsv"):
            return pd.read_csv(file, sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=False,
                               na_values=[""], encoding=encoding)
        if fmt == "jsonl":
            return pd.read_json(file, lines=True, encoding=encoding, dtype=False)
        return pd.read_parquet(file)
    except UnicodeDecodeError as exc:
        raise UserError(f"textfile: {path} is not {encoding} (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                        'save it as UTF-8, or set encoding = "latin-1" (or its real encoding)') from None
    except LookupError:
        raise UserError(f"textfile: {path}: unknown encoding {encoding!r}") from None
    except ImportError as exc:
        raise UserError(f"textfile: {path}: reading Parquet needs pyarrow ({exc}); pip install pyarrow") from None
    except (ValueError, pd.errors.ParserError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise UserError(f"textfile: {path} cannot be read as {fmt}: {first}") from None


def load_textfile(options: TextFileOptions) -> tlbench.LoadedDataset:
    return frame_to_dataset(read_table(options.path, options.format, options.encoding),
                            f"textfile {options.path}", options)


def check_textfile(options: TextFileOptions) -> None:
    """Before any cell runs: the file reads in its encoding, the columns exist (with a
    did-you-mean), every text and label is valid, the splits and domains are there. Cheap for
    text; the table read is kept for the cells (:func:`read_table`)."""
    load_textfile(options)


def check_hf(options: HfTextOptions) -> None:
    """Before any cell runs: the dataset loads (from local files, the ``datasets`` cache or a
    reachable hub) and its columns, labels and splits are valid."""
    load_hf(options)


# ---------------------------------------------------------------------------------------------
# hf_text

PACKAGED = {"csv", "json", "parquet", "text", "arrow", "pandas"}


def load_hf(options: HfTextOptions) -> tlbench.LoadedDataset:
    """``datasets.load_dataset(name, config, data_files=...)``, every split it has, as one table."""
    import pandas as pd

    from tlbench.modalities.text import hub_reachable

    try:
        import datasets
    except ImportError:
        raise UserError('hf_text needs the datasets package: pip install "tlbench[hf]"') from None
    where = f"hf_text {options.name}" + (f" ({options.config})" if options.config else "")
    local = options.name in PACKAGED or Path(options.name).expanduser().exists()
    if not local and not hub_reachable():
        raise UserError(f"{where}: the Hugging Face hub is not reachable (offline); this dataset needs the hub, "
                        'or use name = "csv" | "json" | "parquet" with data_files, or the textfile plugin')
    try:
        loaded = datasets.load_dataset(options.name, options.config, data_files=options.data_files,
                                       revision=options.revision)
    except Exception as exc:  # missing files, unknown dataset or config, a hub error
        first = " ".join(str(exc).split())[:250]
        raise UserError(f"{where}: cannot load ({type(exc).__name__}: {first})") from None
    splits = {SPLIT_NAMES.get(name.lower()): split for name, split in loaded.items()}
    splits.pop(None, None)
    if not splits:
        raise UserError(f"{where}: no train / validation / test split; it has {', '.join(loaded)}")
    first = next(iter(splits.values()))
    feature = first.features.get(options.label_column)
    class_names = list(feature.names) if hasattr(feature, "names") else None
    frames = []
    for name, split in splits.items():
        frame = split.to_pandas()
        if class_names is not None and options.label_column in frame:
            frame[options.label_column] = [class_names[v] if isinstance(v, int) and v >= 0 else None
                                           for v in frame[options.label_column].tolist()]
        frame["__split__"] = name
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    if options.split_column is None:
        split_column = "__split__" if set(splits) != {"train"} else None
        options = options.model_copy(update={"split_column": split_column})
    return frame_to_dataset(frame, where, options, class_names)


@tlbench.hookimpl
def tlbench_datasets():
    file = "a CSV / TSV / JSONL / Parquet file with text and label columns (optional split column)"
    hub = "a Hugging Face datasets text set (hub when online, or csv/json/parquet builders on local files)"
    pair = "; a domain column's source and target values make a domain-shift pair"
    return [
        tlbench.DatasetPlugin("textfile", f"your texts: {file}", TextFileOptions, load_textfile, modality="text",
                              check=check_textfile),
        tlbench.DatasetPlugin("textfile_shift", f"your texts: {file}{pair}", TextFileShiftOptions, load_textfile,
                              modality="text", has_target_domain=True, check=check_textfile),
        tlbench.DatasetPlugin("hf_text", hub, HfTextOptions, load_hf, modality="text", check=check_hf),
        tlbench.DatasetPlugin("hf_text_shift", hub + pair, HfTextShiftOptions, load_hf, modality="text",
                              has_target_domain=True, check=check_hf),
    ]
