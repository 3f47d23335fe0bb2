"""The one validation of a plugin's (or the suite's) options: pydantic's errors as one line
naming the file and key (``validate``), and a value as such a line shows it (``shown``); and the
path types a plugin's options declare (:data:`UserPath`, :data:`ExistingFolder`).

Used by the suite, the ``[search]`` table and the executor toolkit alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ValidationError

from tlbench.contract.errors import UserError

__all__ = ["ExistingFolder", "UserPath", "check_strategy", "field_help", "shown", "validate"]

#: A ``Path`` option whose leading ``~`` is expanded when the options are validated.
UserPath = Annotated[Path, AfterValidator(lambda path: path.expanduser())]


def _existing_folder(path: Path) -> Path:
    path = path.expanduser()
    if not path.is_dir():
        raise ValueError(f"folder not found: {path}")
    return path


#: A ``UserPath`` that must be an existing folder when the suite is validated (before training).
ExistingFolder = Annotated[Path, AfterValidator(_existing_folder)]


def validate(model: type[BaseModel], values: dict, at: str):
    """``values`` validated by ``model``, else one :class:`UserError` line starting with ``at`` that
    names the key (unknown: the valid keys; missing: its help)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            valid = ", ".join(model.model_fields) or "(none)"
            raise UserError(f"{at}.{key}: unknown key; valid keys: {valid}") from None
        if err["type"] == "missing":
            raise UserError(f"{at}.{key}: missing required key ({field_help(model, key)})") from None
        got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
        where = f"{at}.{key}" if key else at  # a check of the whole table (e.g. peft's config) names no key
        raise UserError(f"{where}: {err['msg']}{got}") from None


def check_strategy(record, options, registry, at: str) -> None:
    """A strategy plugin's ``check(options, strategies)`` (:class:`tlbench.StrategyPlugin`), if it has
    one, with the registry's strategies by name; its :class:`UserError` as one line starting with ``at``."""
    if record.check is not None:
        try:
            record.check(options, lambda name: registry.get("strategy", name))
        except UserError as exc:
            raise UserError(f"{at}: {exc}") from None


def shown(value, limit: int = 60) -> str:
    """A value as the error line shows it: its repr, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def field_help(model: type[BaseModel], key: str) -> str:
    """The description of ``model``'s field ``key`` (else a pointer to ``tlbench list``)."""
    field = model.model_fields.get(key)
    return field.description if field and field.description else "see `tlbench list`"
