"""``report.html``: one self-contained page (figures inlined as data URIs, no network)."""
from __future__ import annotations

import base64
import html as _html
import json
from datetime import datetime, timezone
from pathlib import Path

from tlbench.report.figures import FORMATS, FigureOut
from tlbench.report.sections import PLACES, Built
from tlbench.report.tables import Table, to_html

esc = _html.escape

CSS = """
:root { --fg:#1b1b1b; --muted:#6b6b6b; --rule:#d0d0d0; --accent:#0072B2; --bg:#ffffff; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
main { max-width: 1280px; margin: 0 auto; padding: 1.5rem 1.5rem 4rem; }
h1 { font-size: 1.7rem; margin: .2rem 0 .3rem; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 .6rem; padding-bottom: .25rem;
     border-bottom: 2px solid var(--rule); }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
nav { margin: .6rem 0 1rem; font-size: .92rem; }
nav a { margin-right: 1rem; color: var(--accent); text-decoration: none; }
.meta { color: var(--muted); font-size: .92rem; }
.notice { border-left: 4px solid #D55E00; background: #fdf1ea; padding: .6rem .9rem;
          margin: 1rem 0; }
.notice.ok { border-color: #009E73; background: #eaf6f1; }
figure { margin: 1rem 0 2rem; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid #eee; }
figcaption { font-size: .9rem; color: #333; margin-top: .4rem; max-width: 60rem; }
figcaption .dl a { color: var(--accent); margin-right: .6rem; }
.tablewrap { overflow-x: auto; margin: .8rem 0 1.8rem; }
table.data { border-collapse: collapse; font-size: .84rem; font-variant-numeric: tabular-nums; }
table.data caption { caption-side: top; text-align: left; font-size: .88rem; color: #333;
                     padding-bottom: .5rem; max-width: 60rem; }
table.data th, table.data td { padding: .22rem .5rem; white-space: nowrap; }
table.data thead th { border-top: 2px solid var(--fg); border-bottom: 1px solid var(--fg); }
table.data tbody tr:last-child td { border-bottom: 2px solid var(--fg); }
table.data tr.group td { border-top: 1px solid var(--rule); }
table.data td.num, table.data th.num { text-align: right; }
table.data td.txt, table.data th.txt { text-align: left; }
table.data td.muted { color: var(--muted); font-style: italic; }
table.data sup.mark { color: #D55E00; font-weight: bold; margin-left: 1px; }
#tab-failures td:last-child { white-space: normal; min-width: 24rem; font-family: ui-monospace,
  SFMono-Regular, Menlo, Consolas, monospace; font-size: .8rem; }
pre { background: #f6f6f6; padding: .8rem 1rem; overflow-x: auto; font-size: .82rem;
      border: 1px solid #e6e6e6; }
details summary { cursor: pointer; color: var(--accent); margin: .4rem 0; }
dl.env { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1.2rem;
         font-size: .88rem; }
dl.env dt { font-weight: 600; } dl.env dd { margin: 0; font-family: ui-monospace, monospace; }
@media print { nav { display: none; } h2 { break-after: avoid; } figure { break-inside: avoid; } }
"""

# Marks the page once every figure has decoded, for a headless browser (and a human) to check.
SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var body = document.body;
  body.setAttribute("data-images-total", String(imgs.length));
  body.setAttribute("data-images-loaded", String(ok.length));
  body.setAttribute("data-images-ok", String(ok.length === imgs.length));
  body.setAttribute("data-tables", String(document.querySelectorAll("table.data").length));
  imgs.forEach(function (i) { i.setAttribute("data-loaded", String(i.naturalWidth > 0)); });
});
"""


def _img(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _png_width(path: Path) -> int | None:
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(head[16:20], "big")


# Figures are saved at savefig.dpi (200); shown at 120 CSS px per inch, every figure's text
# appears at the same size on the page (a little above print size).
DISPLAY_SCALE = 120 / 200


def _figure(f: FigureOut, n: int) -> str:
    links = " ".join(f'<a href="figures/{esc(f.name)}.{ext}">{ext.upper()}</a>'
                     for ext in FORMATS)
    w = _png_width(f.png)
    size = f' width="{round(w * DISPLAY_SCALE)}"' if w else ""
    return (f'<figure id="{esc(f.name)}"><img src="{_img(f.png)}"{size} alt="{esc(f.title)}">'
            f"<figcaption><strong>Figure {n}. {esc(f.title)}.</strong> {esc(f.caption)} "
            f'<span class="dl">Files: {links}</span></figcaption></figure>')


def _table(t: Table) -> str:
    files = " ".join(f'<a href="tables/{esc(t.name)}.{ext}">{ext}</a>' for ext in
                     ("md", "csv", "tex"))
    return (f'<div class="tablewrap">{to_html(t)}</div>'
            f'<p class="meta">Files: {files}</p>')


def _why(b: Built) -> str:
    return f'<p class="meta">{esc(b.why)}</p>'


def _env(environment: dict) -> str:
    if not environment:
        return '<p class="meta">No environment was recorded.</p>'
    items = []
    for k, v in environment.items():
        text = v if isinstance(v, str) else json.dumps(v, default=str, sort_keys=True)
        items.append(f"<dt>{esc(str(k))}</dt><dd>{esc(str(text))}</dd>")
    return f'<dl class="env">{"".join(items)}</dl>'


def render(*, meta: dict, counts: dict, scope: dict, filters_text: str, notices: list[str],
           sections: list[Built]) -> str:
    """The page: header and notices, then the built sections by place (figures, tables,
    collapsed tables, failures) in their order, then the suite file and the environment."""
    suite = str(meta.get("suite_name") or "tlbench suite")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    scope_txt = " · ".join(f"{len(v)} {k}: {', '.join(map(str, v))}" for k, v in scope.items())
    parts = [f"<h1>{esc(suite)}</h1>",
             f'<p class="meta">tlbench report · generated {when} · {esc(status)}</p>',
             f'<p class="meta">{esc(scope_txt)}</p>']
    if filters_text:
        parts.append(f'<p class="notice ok">Filtered report: {esc(filters_text)}.</p>')
    for n in notices:
        parts.append(f'<p class="notice">{esc(n)}</p>')
    nav = [("figures", "Figures"), ("tables", "Tables"), ("failures", "Failed and skipped"),
           ("suite", "Suite"), ("environment", "Environment")]
    parts.append("<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in nav) + "</nav>")
    at = {place: [b for b in sections if b.section.place == place] for place in PLACES}

    parts.append('<h2 id="figures">Figures</h2>')
    figures = [b.output for b in at["figures"] if b.output is not None and b.shown]
    parts += [_figure(f, i) for i, f in enumerate(figures, 1)]
    parts += [_why(b) for b in at["figures"] if b.output is None and b.why]

    parts.append('<h2 id="tables">Tables</h2>')
    for b in at["tables"]:
        if b.output is not None and b.shown:
            parts.append(_table(b.output))
        elif b.output is None and b.why:
            parts.append(_why(b))
    for b in at["details"]:
        if b.output is not None and b.shown:
            parts.append(f"<details><summary>{esc(b.section.label or b.output.title)}</summary>"
                         + _table(b.output) + "</details>")

    parts.append('<h2 id="failures">Failed and skipped cells</h2>')
    failures = [b.output for b in at["failures"] if b.output is not None and b.shown]
    if not failures:
        parts.append('<p class="notice ok">Every cell finished: nothing failed or was '
                     "skipped.</p>")
    parts += [_table(t) for t in failures]

    parts.append('<h2 id="suite">Suite configuration</h2>')
    toml = meta.get("suite_toml") or ""
    parts.append(f"<pre>{esc(toml)}</pre>" if toml.strip() else
                 '<p class="meta">The suite file was not recorded.</p>')
    parts.append('<h2 id="environment">Environment</h2>')
    parts.append(_env(meta.get("environment") or {}))

    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(suite)} · tlbench report</title>\n<style>{CSS}</style>\n"
            f"<script>{SCRIPT}</script>\n</head>\n<body>\n<main>\n{body}\n</main>\n"
            "</body>\n</html>\n")
