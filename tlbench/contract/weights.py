"""What backbone plugins share: the rule of a ``weights`` option."""
from __future__ import annotations

#: the ``weights`` values that name no file
NAMED_WEIGHTS = ("imagenet", "none")


def weights_option(weights: str, suffixes: tuple[str, ...], kind: str = "checkpoint file") -> str:
    """``weights`` if it is ``"imagenet"``, ``"none"`` or a path ending in one of ``suffixes``;
    else a ValueError (a pydantic ``field_validator`` turns it into the one-line suite error)."""
    if weights in NAMED_WEIGHTS or weights.lower().endswith(suffixes):
        return weights
    raise ValueError(f'weights must be "imagenet", "none" or a path to a {kind} ({", ".join(suffixes)}), '
                     f"got {weights!r}")
