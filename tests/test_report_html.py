"""Open report.html from disk in headless Chromium, as a reader would, and check it rendered.

The page marks ``<body>`` once loaded: data-images-ok / data-images-loaded / data-tables, and
every ``<img>`` with data-loaded (naturalWidth > 0). ``--dump-dom`` shows those attributes.
Needs Debian's chromium (``apt-get install -y chromium``); skipped when it is not installed.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tlbench.report import write_report

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def realistic_frame(seed: int = 0) -> pd.DataFrame:
    """2 backbones × 2 datasets (one a shift pair) × strategies × 3 label fractions × 3 seeds."""
    rng = np.random.default_rng(seed)
    plain = {"scratch": .3, "linear_probe": .70, "partial_finetune": .72, "lora": .74,
             "finetune": .73, "my_adapter": .71}
    shifted = {"linear_probe": .50, "finetune": .55, "dann": .65, "target_oracle": .85}
    rows = []
    for b, scale in (("efficientnet_lite0", 1.0), ("vit_small", 1.05)):
        for d, shift in (("digits", False), ("mnist->usps", True)):
            for s, base in (shifted if shift else plain).items():
                variants = [{"lr": 1e-3}, {"lr": 1e-4}] if s == "finetune" else [{}]
                for v in variants:
                    for frac in (0.01, 0.1, 1.0):
                        for k in range(3):
                            gain = (1 - base) * 0.7 * (math.log10(frac) + 2) / 2
                            acc = min(.99, (base - .1 + gain) * scale + rng.normal(0, .015))
                            failed = s == "lora" and b == "vit_small" and frac == .01 and k == 2
                            t = (20 + 300 * frac) * (0.1 if s == "linear_probe" else 1)
                            rows.append(dict(
                                cell_id=f"c{len(rows)}", backbone=b, dataset=d, strategy=s,
                                role={"scratch": "baseline", "dann": "adaptation",
                                      "target_oracle": "oracle"}.get(s, "transfer"),
                                variant=json.dumps(v), seed=k, label_fraction=frac,
                                status="failed" if failed else "ok",
                                error="RuntimeError: CUDA out of memory" if failed else "",
                                test_acc=np.nan if failed else acc,
                                test_macro_f1=np.nan if failed else acc - .02,
                                val_acc=np.nan if failed else acc + rng.normal(0, .01),
                                source_test_acc=(.95 - .04 * (s == "dann")) if shift else np.nan,
                                target_val_acc=acc if shift else np.nan,
                                wall_seconds=t + 5, train_seconds=t, examples_per_second=900.0,
                                peak_memory_mb=1500.0 * scale,
                                trainable_params=12_810 if s == "linear_probe" else 4_000_000,
                                total_params=4_000_000, device="cuda",
                                has_target_domain=shift))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("results") / "demo"
    meta = {"suite_name": "demo", "suite_toml": '[suite]\nname = "demo"\n',
            "environment": {"python": "3.11", "device": "cuda"}}
    return write_report(realistic_frame(), out, meta)


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


def colour_share(pixels: np.ndarray, hex_colour: str, tol: int = 12) -> float:
    """Share of the pixels within ``tol`` (per channel) of ``hex_colour``."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(pixels[..., :3].astype(int) - rgb).max(axis=-1) <= tol).mean())


def assert_rendered(png: Path) -> None:
    """The screenshot shows a page: not blank, with text, and with the figures drawn (the
    strategies' own colours are on screen; ones the page's CSS does not use)."""
    from PIL import Image
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000, pixels.shape
    top = max(colour_share(pixels, c) for c in ("#ffffff", "#fafafa"))
    assert top < 0.97, f"the page is {100 * top:.1f}% background: nothing rendered"
    dark = float((pixels.max(axis=-1) < 80).mean())
    assert dark > 0.002, f"only {100 * dark:.2f}% dark pixels: no text rendered"
    for name, colour in (("linear_probe", "#E69F00"), ("partial_finetune", "#56B4E9"),
                         ("target_oracle", "#CC79A7")):
        assert colour_share(pixels, colour) > 1e-4, f"no {name} colour {colour} on screen"


def test_screenshot_check_rejects_a_blank_page(tmp_path):
    """The check above fails on a blank page and on a page without the figures."""
    from PIL import Image
    blank = tmp_path / "blank.png"
    Image.new("RGB", (1280, 4000), "white").save(blank)
    with pytest.raises(AssertionError, match="background"):
        assert_rendered(blank)
    text_only = tmp_path / "text.png"
    img = np.full((4000, 1280, 3), 255, np.uint8)
    img[::10, :, :] = 0  # lines of "text", no figure colours
    Image.fromarray(img).save(text_only)
    with pytest.raises(AssertionError, match="colour"):
        assert_rendered(text_only)


@needs_chromium
def test_page_renders_every_figure_and_table(page, tmp_path):
    res = chromium(["--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                   tmp_path / "profile")
    dom = res.stdout
    assert "<body" in dom, f"chromium gave no DOM (rc={res.returncode}): {res.stderr[-2000:]}"
    body = re.search(r"<body[^>]*>", dom).group(0)
    attrs = dict(re.findall(r'(data-[\w-]+)="([^"]*)"', body))
    assert attrs.get("data-images-ok") == "true", attrs
    figures = len(list((page.parent / "figures").glob("*.png")))
    assert figures >= 5 and attrs["data-images-total"] == attrs["data-images-loaded"] == str(figures)
    imgs = re.findall(r"<img[^>]*>", dom)
    assert len(imgs) == figures and all('data-loaded="true"' in i for i in imgs)
    for tid in ("tab-accuracy", "tab-ranks", "tab-cost", "tab-failures"):
        assert f'id="{tid}"' in dom, tid
    assert int(attrs["data-tables"]) >= 4
    assert "CUDA out of memory" in dom


@needs_chromium
def test_page_screenshot(page, tmp_path):
    shot = tmp_path / "report.png"
    res = chromium(["--window-size=1280,4000", "--virtual-time-budget=10000",
                    f"--screenshot={shot}", page.as_uri()], tmp_path / "profile")
    assert shot.exists(), res.stderr[-2000:]
    assert_rendered(shot)
    keep = os.environ.get("TLBENCH_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
