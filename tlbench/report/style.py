"""One look for every figure: a colour and a marker per strategy, stable across reports.

Known strategies have fixed colours from the Okabe-Ito palette (safe for the common forms of
colour blindness); any other name gets a colour from a second colour-blind-safe list (Paul
Tol's), picked by a hash of the name, so a third-party strategy keeps its colour from one
report to the next. Markers repeat the distinction for grey-scale print.
"""
from __future__ import annotations

import zlib

# Okabe & Ito (2008), "Color Universal Design"; yellow (#F0E442) is left out: too pale on white.
KNOWN_COLORS = {
    "finetune": "#0072B2",          # blue
    "linear_probe": "#E69F00",      # orange
    "partial_finetune": "#56B4E9",  # sky blue
    "lora": "#009E73",              # bluish green
    "scratch": "#000000",           # black
    "dann": "#D55E00",              # vermillion
    "target_oracle": "#CC79A7",     # reddish purple
    # the retention strategies: fixed from the second list, so that these three never share one
    "lp_ft": "#332288",             # indigo
    "wise_ft": "#CC6677",           # rose
    "soup": "#999933",              # olive
}
# Paul Tol's muted scheme, less the tones too close to the ones above.
EXTRA_COLORS = ["#332288", "#882255", "#999933", "#AA4499", "#44AA99", "#DDCC77", "#CC6677",
                "#117733"]

KNOWN_MARKERS = {
    "finetune": "o", "linear_probe": "s", "partial_finetune": "D", "lora": "^",
    "scratch": "v", "dann": "P", "target_oracle": "*", "lp_ft": "X", "wise_ft": "d", "soup": "h",
}
EXTRA_MARKERS = ["X", "p", "h", "<", ">", "d", "8", "H"]
BACKBONE_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "p", "h", "*"]

# Order of strategies in tables and legends: cheapest to most adapted, then shift-specific.
KNOWN_ORDER = ["scratch", "linear_probe", "partial_finetune", "lora", "finetune", "dann",
               "target_oracle"]

# Roles are declared by each strategy plugin and stored in every record (tlbench.contract.values.Role);
# the report decides what is an oracle, an adaptation method or a transfer method by role only,
# never by the label a suite gives a strategy.
ORACLE = "oracle"
ADAPTATION = "adaptation"
TRANSFER = "transfer"
BASELINE = "baseline"
ROLES = ("transfer", "baseline", "adaptation", "oracle")


def _hash(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def strategy_color(name: str) -> str:
    if name in KNOWN_COLORS:
        return KNOWN_COLORS[name]
    return EXTRA_COLORS[_hash(name) % len(EXTRA_COLORS)]


def strategy_marker(name: str) -> str:
    if name in KNOWN_MARKERS:
        return KNOWN_MARKERS[name]
    return EXTRA_MARKERS[(_hash(name) // len(EXTRA_COLORS)) % len(EXTRA_MARKERS)]


def strategy_linestyle(name: str, role: str | None = None) -> str:
    """Dashed for an oracle (by its declared role), solid otherwise."""
    return "--" if role == ORACLE else "-"


def order_strategies(names, roles: dict[str, str] | None = None) -> list[str]:
    """Known strategies in a fixed order, then others by name; strategies whose role is
    ``oracle`` always last."""
    names = set(names)
    roles = roles or {}
    oracles = {n for n in names if roles.get(n) == ORACLE}
    rest = names - oracles

    def ordered(group):
        return [n for n in KNOWN_ORDER if n in group] + sorted(group - set(KNOWN_ORDER))
    return ordered(rest) + ordered(oracles)


def backbone_markers(backbones) -> dict[str, str]:
    return {b: BACKBONE_MARKERS[i % len(BACKBONE_MARKERS)] for i, b in enumerate(backbones)}


# Sizes for a figure set at the width of one column (~3.3 in) or of the page (~7 in): the
# fonts are set in points at the size the figure is saved, so they stay readable in print.
RC = {
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7.5,
    "legend.title_fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "lines.linewidth": 1.5,
    "lines.markersize": 4.5,
    "pdf.fonttype": 42,   # embed TrueType: text stays text in the PDF
    "ps.fonttype": 42,
    "svg.fonttype": "path",
    "savefig.dpi": 200,
    "figure.dpi": 100,
}
PANEL_W = 2.35  # inches per panel
PANEL_H = 1.95
