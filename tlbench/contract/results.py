"""The record of one cell: what it was, what it measured, what it cost (store schema 2).

A :class:`CellRecord` is built by the worker, crosses back to the controller (pickled, or over
Ray), is stored as JSON in the store's ``records`` table and its per-example evidence (npz bytes,
:mod:`tlbench.contract.evidence`) in the ``evidence`` table, in the same transaction. ``results.csv`` is
its flattening (:func:`flatten`): the identifying fields, every metric a strategy returned and
every :class:`Cost` field, so nothing measured is lost on the way to a table.
"""
from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 2

Status = Literal["ok", "skipped", "diverged", "failed"]


class Cost(BaseModel):
    """What a cell cost. Every field is optional: a reading that could not be made is ``None``,
    never a guess."""

    model_config = ConfigDict(extra="forbid")

    wall_seconds: float | None = Field(None, description="the cell from start to record, in the worker")
    train_seconds: float | None = Field(None, description="time inside the training loop (compile excluded)")
    examples_per_second: float | None = Field(None, description="training examples per training second")
    compile_seconds: float | None = Field(None, description="time the first, compiling step took")
    eval_seconds: float | None = Field(None, description="time the training loop spent evaluating validation "
                                                         "(kept out of train_seconds)")
    peak_memory_mb: float | None = Field(None, description="CUDA peak allocated, or CPU resident-memory growth")
    trainable_params: int | None = Field(None, description="parameters the strategy trained")
    total_params: int | None = Field(None, description="parameters of the trained model in all")
    energy_joules: float | None = Field(None, description="energy of the cell's training, from energy_source")
    energy_source: str | None = Field(None, description='"nvml" (GPU counter) or "rapl" (CPU package counter)')
    energy_devices: str | None = Field(None, description="the devices the energy reading covers")
    energy_shared: bool | None = Field(None, description="other workers shared the measured devices")
    forgetting_seconds: float | None = Field(None, description="time the forgetting measurement took after training "
                                             "([forgetting]: reference features of the adapted backbone, probe fits)")
    deployed_params: int | None = Field(None, description="parameters of what is deployed (adapters merged)")
    deployed_bytes: int | None = Field(None, description="bytes of the deployed model's weights")
    adapter_bytes: int | None = Field(None, description="bytes of the trained adapter alone (PEFT methods)")
    latency_ms: float | None = Field(None, description="inference latency at batch 1, median")
    throughput: float | None = Field(None, description="inference examples per second at the eval batch size")
    predicted_seconds: float | None = Field(None, description="wall time predicted before the run")
    train_examples: int | None = Field(None, description="labelled training examples of the cell (its label budget)")


class CellRecord(BaseModel):
    """One cell's record. ``config`` is the cell's resolved configuration (what its id hashes);
    ``metrics`` holds every number the core scored and the strategy returned (``Outcome.extra``);
    ``train_curve`` the training loss at a few steps, ``val_curve`` the validation accuracy at
    each evaluation during training (``{step, examples, seconds, val_acc[, joules]}``);
    ``best_step`` the step whose state was reported; ``stopped`` how the training loop ended
    (``"plateau"``: its patience rule fired; ``"cap"``: it trained its planned steps; None: no
    loop, e.g. the linear probe, or a record of tlbench before 0.4). ``evidence`` (not part of the
    JSON) is the per-example predictions, see :mod:`tlbench.contract.evidence`.

    Records stored before 0.4 carry ``undertrained`` (the retired "may be undertrained" flag):
    they still load, without it."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    cell_id: str
    suite: str = ""
    backbone: str = ""
    dataset: str = ""
    strategy: str = ""
    variant: str = "{}"
    seed: int = 0
    label_fraction: float = 1.0
    config: dict[str, Any] = Field(default_factory=dict)
    role: str = "transfer"
    select_on: str = "val"
    has_target_domain: bool = False
    task: str = Field("classification", description="the dataset's task (tlbench.tasks): its score names the "
                      "record's main metrics, val_<score> and test_<score> (classification: val_acc, test_acc)")
    status: Status = "ok"
    error: str | None = None
    traceback: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    cost: Cost = Field(default_factory=Cost)
    run: dict[str, Any] = Field(default_factory=dict)
    train_curve: list[dict[str, float]] = Field(default_factory=list)
    val_curve: list[dict[str, float]] = Field(default_factory=list)
    best_step: int | None = None
    steps: int | None = None
    stopped: str | None = Field(
        None, description='how the training loop ended: "plateau" (patience evaluations without a better '
                          'validation accuracy), "cap" (its planned steps); None without a loop')
    finished_at: str | None = None
    input_error: Literal["dataset", "backbone"] | None = Field(
        None, description="the cell stopped on a user error in its dataset or backbone: the controller stores no "
                          "record, hands out none of that dataset's (backbone's) cells and exits with status 2")
    evidence: bytes | None = Field(None, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _retired_fields(cls, data):
        """Drop ``undertrained`` (tlbench 0.3's flag, replaced by ``stopped``) from older records."""
        if isinstance(data, dict) and "undertrained" in data:
            data = {k: v for k, v in data.items() if k != "undertrained"}
        return data

    def to_json(self) -> str:
        return self.model_dump_json(exclude={"evidence"})

    def __getitem__(self, key: str):
        """``record["metrics"]``: the dict record of tlbench 0.2, read-only, deprecated."""
        warnings.warn("reading a record as a dict (record[key]) is deprecated since tlbench 0.3; "
                      "use its attributes (record.metrics, record.cost.train_seconds)", DeprecationWarning,
                      stacklevel=2)
        if key not in type(self).model_fields or key == "evidence":
            raise KeyError(key)
        return self.model_dump(include={key})[key]

    def get(self, key: str, default=None):
        """``record.get("metrics")``, as on the dict record of tlbench 0.2 (deprecated)."""
        try:
            return self[key]
        except KeyError:
            return default


#: the identifying columns of ``results.csv``, in order; metrics and cost follow
ID_COLUMNS = ["cell_id", "backbone", "dataset", "strategy", "role", "variant", "seed", "label_fraction",
              "status", "error"]
#: metrics every ok classification record has (more follow: other tasks' scores, what strategies report)
CORE_METRICS = ["test_acc", "test_macro_f1", "val_acc", "source_test_acc", "target_val_acc"]
TAIL_COLUMNS = ["best_step", "steps", "stopped", "stop", "budget", "device", "has_target_domain", "task",
                "finished_at"]
#: columns of ``TAIL_COLUMNS`` that are not record fields
DERIVED = ("stop", "budget", "device")


def flatten(record: CellRecord) -> dict:
    """One row of ``results.csv``: identifying fields, every metric, every cost field."""
    row = {k: getattr(record, k) for k in ID_COLUMNS}
    row.update({k: record.metrics.get(k) for k in CORE_METRICS})
    row.update({k: v for k, v in record.metrics.items() if k not in CORE_METRICS})
    row.update(record.cost.model_dump())
    row.update({k: getattr(record, k) for k in TAIL_COLUMNS if k not in DERIVED})
    row["stop"] = (record.config.get("train") or {}).get("stop", "budget")
    row["budget"] = budget_of(record)
    row["device"] = record.run.get("device")
    return row


def budget_of(record: CellRecord) -> float:
    """The cell's ``[train] budget``: 1.0 but in a budget-check cell (its multiple of the suite's
    steps, ``[budget_check] factor``); configurations leave it out at 1.0."""
    return float((record.config.get("train") or {}).get("budget", 1.0))


def columns(records: list[CellRecord]) -> list[str]:
    """The columns of the flattened records: fixed ones first, then every metric some record has."""
    extra = sorted({k for r in records for k in r.metrics} - set(CORE_METRICS))
    return ID_COLUMNS + CORE_METRICS + extra + list(Cost.model_fields) + TAIL_COLUMNS
