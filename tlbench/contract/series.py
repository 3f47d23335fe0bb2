"""Curves a strategy reports in its flat metrics (``Outcome.extra``, ``CellRecord.metrics``).

A point of the curve ``name`` at coordinates ``alpha = 0.3`` is the metric ``name[alpha=0.3]``
(several coordinates: ``name[lr=0.001,weight_decay=0.05]``, in the order given), so a curve
travels as plain numbers through the store and ``results.csv`` like every other metric. WiSE-FT
writes ``wise_val_acc[alpha=...]`` (selection accuracy at each mixing coefficient), a soup
``soup_val_acc[...]`` and ``soup_in[...]`` (1: in the soup) per ingredient; :func:`read` gives a
curve back.
"""
from __future__ import annotations

import re

__all__ = ["key", "read"]

_POINT = re.compile(r"(?P<name>[^\[\]]+)\[(?P<coords>[^\[\]]*)\]")


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def key(name: str, **coords) -> str:
    """The metric name of the point ``coords`` of the curve ``name``: ``key("wise_val_acc", alpha=0.3)``
    is ``"wise_val_acc[alpha=0.3]"``."""
    return f"{name}[" + ",".join(f"{k}={_text(v)}" for k, v in coords.items()) + "]"


def _value(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def read(metrics: dict[str, float], name: str) -> list[tuple[dict, float]]:
    """The points of the curve ``name`` in ``metrics``: ``(coordinates, value)`` pairs in the order
    stored, numbers read back as floats (``[({"alpha": 0.3}, 0.91), ...]``)."""
    points = []
    for metric, value in metrics.items():
        match = _POINT.fullmatch(metric)
        if match and match["name"] == name:
            coords = dict(pair.split("=", 1) for pair in match["coords"].split(",") if pair)
            points.append(({k: _value(v) for k, v in coords.items()}, value))
    return points
