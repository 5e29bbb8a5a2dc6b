"""``report.html``: one self-contained page a person reads after a batch (``--report``).

Everything is inside the file (thumbnails as ``data:`` WebP images, histograms as inline SVG, a short
script, no network, no external file needed), so it opens from a USB stick; each thumbnail links
to the full-size overlay beside it when the output folder travels with it. Contents:

- the run: tool, model, counts by status (ok / refused / failed) and by quality verdict;
- a histogram of vessel fraction and of each measurement (``--measure``);
- the slowest images, and every failure with its message;
- per image a panel: photograph | overlay | probability (one thumbnail strip), status, verdict,
  reasons, vessel fraction, seconds and measurements; :data:`PAGE_SIZE` panels a page, filtered by
  status or verdict, so 5 000 images cost one page of decoded thumbnails at a time.

The script writes ``#report-status`` (``data-state="ready"``, images loaded / failed, script
errors): the browser test reads it from the dumped DOM.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from fundus_vessels.runtime.imageio import ImageReadError, atomic_output, read_image
from fundus_vessels.runtime.pictures import photo_rgb
from fundus_vessels.runtime.results_table import MEASURE_COLUMNS, MEASURE_PREFIX, summary_rows

REPORT_HTML = "report.html"
THUMB_HEIGHT = 96  # pixels of each panel in the strip
THUMB_GAP = 2
# WebP: a third smaller than JPEG at the same look (96 px strip: 4.4 kB at q60 vs 6.3 kB JPEG q70)
WEBP_QUALITY = 60
PAGE_SIZE = 50
SLOWEST = 10
HISTOGRAM_BINS = 20


def _read_rgb(path: Path) -> np.ndarray | None:
    try:
        return photo_rgb(read_image(path))
    except (ImageReadError, OSError, ValueError):
        return None


def _shrink(image: np.ndarray, height: int) -> np.ndarray:
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def thumbnail_strip(panels: Sequence[np.ndarray | None], height: int = THUMB_HEIGHT) -> str:
    """The present panels side by side at ``height`` px, as a ``data:image/webp`` URI ('' if none)."""
    shrunk = [_shrink(p, height) for p in panels if p is not None]
    if not shrunk:
        return ""
    gap = np.full((height, THUMB_GAP, 3), 255, np.uint8)
    strip = np.hstack([part for image in shrunk for part in (image, gap)][:-1])
    ok, data = cv2.imencode(".webp", strip[:, :, ::-1], [cv2.IMWRITE_WEBP_QUALITY, WEBP_QUALITY])
    if not ok:
        return ""
    return "data:image/webp;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def _photo_path(out_dir: Path, entry: Mapping) -> Path:
    path = Path(entry["file"])
    if not path.is_file() and (out_dir / path.name).is_file():  # the demo's photograph, or a moved input
        path = out_dir / path.name
    return path


def entry_thumbnail(out_dir: Path, entry: Mapping) -> str:
    """The strip photograph | overlay | probability of one summary entry (what exists of it)."""
    outputs = entry.get("outputs", {})
    panels = [_read_rgb(_photo_path(out_dir, entry))]
    panels += [_read_rgb(out_dir / outputs[kind]) if kind in outputs else None for kind in ("overlay", "prob")]
    return thumbnail_strip(panels)


def _finite(values: Sequence[object]) -> list[float]:
    out = []
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out.append(float(value))
    return out


def histogram_svg(values: Sequence[float], title: str, bins: int = HISTOGRAM_BINS) -> str:
    """An inline SVG histogram of ``values`` with its range, count and median."""
    width, height, left, bottom, top = 240, 130, 30, 24, 30
    if not values:
        return ""
    low, high = min(values), max(values)
    counts, edges = np.histogram(values, bins=bins, range=(low, high if high > low else low + 1e-9))
    peak = max(1, int(counts.max()))
    plot_w, plot_h = width - left - 6, height - bottom - top
    bar_w = plot_w / bins
    bars = []
    for i, count in enumerate(counts):
        h = plot_h * count / peak
        x, y = left + i * bar_w, top + plot_h - h
        tip = f"{edges[i]:.4g} - {edges[i + 1]:.4g}: {count}"
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}">'
            f"<title>{tip}</title></rect>"
        )
    median = float(np.median(values))
    text = html.escape(title)
    return (
        f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
        f'<text x="4" y="11" class="t">{text}</text>'
        f'<text x="4" y="23" class="c">n={len(values)}, median {median:.4g}</text>'
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 6}" y2="{top + plot_h}" class="axis"/>'
        f'<text x="{left - 4}" y="{top + 8}" class="c" text-anchor="end">{peak}</text>'
        f'<text x="{left - 4}" y="{top + plot_h}" class="c" text-anchor="end">0</text>'
        f"{''.join(bars)}"
        f'<text x="{left}" y="{height - 10}" class="c">{low:.4g}</text>'
        f'<text x="{width - 6}" y="{height - 10}" class="c" text-anchor="end">{high:.4g}</text>'
        "</svg>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _items(out_dir: Path, summary: Mapping, rows: list[dict], measure: bool) -> list[dict]:
    """One compact record per row for the page's script (thumbnails of image entries)."""
    entries = {e["file"]: e for e in summary.get("images", [])}
    items = []
    for row in rows:
        entry = entries.get(row["file"])
        item = {
            "f": row["file"],
            "s": row["status"],
            "r": row["reason"] or "",
            "v": row["quality_verdict"] or "",
            "q": row["quality_reasons"] or "",
            "vf": row["vessel_fraction"],
            "sec": row["seconds"],
            "t": entry_thumbnail(out_dir, entry) if entry is not None else "",
            "o": (entry or {}).get("outputs", {}).get("overlay", ""),
        }
        if measure:
            item["m"] = {c.removeprefix(MEASURE_PREFIX): row[c] for c in MEASURE_COLUMNS if row.get(c) is not None}
        items.append(item)
    return items


def _overview(summary: Mapping, rows: list[dict], measure: bool) -> str:
    status = Counter(r["status"] for r in rows)
    verdicts = Counter(r["quality_verdict"] or "not graded" for r in rows if r["status"] != "failed")
    counts = _table(["status", "images"], [(k, status.get(k, 0)) for k in ("ok", "refused", "failed")])
    verdict_table = _table(["quality verdict", "images"], sorted(verdicts.items()))
    fraction = histogram_svg(_finite([r["vessel_fraction"] for r in rows]), "vessel fraction of the FOV")
    hists = [histogram_svg(_finite([r.get(c) for r in rows]), c.removeprefix(MEASURE_PREFIX)) for c in MEASURE_COLUMNS]
    hists = [h for h in hists if h] if measure else []
    measured = (
        f'<details id="measurements"><summary>Histograms of the {len(hists)} measurements</summary>'
        f'<div class="hists">{"".join(hists)}</div></details>'
        if hists
        else ""
    )
    timed = sorted((r for r in rows if _finite([r["seconds"]])), key=lambda r: -float(r["seconds"]))[:SLOWEST]
    slowest = _table(["file", "seconds", "status"], [(r["file"], r["seconds"], r["status"]) for r in timed])
    failed = [(r["file"], r["reason"]) for r in rows if r["status"] == "failed"]
    failures = _table(["file", "message"], failed) if failed else "<p>none</p>"
    bundle = summary.get("bundle", {})
    run = f"{summary.get('tool', '')}, model {bundle.get('name', '')}, backend {summary.get('backend', '')}"
    return (
        f'<section id="overview"><p class="run">{html.escape(run)}; {len(rows)} inputs</p>'
        f'<div class="row">{counts}{verdict_table}{fraction}</div>{measured}'
        f'<div class="row"><div><h2>Slowest {len(timed)} images</h2>{slowest}</div>'
        f'<div><h2 id="failures">Failures ({len(failed)})</h2>{failures}</div></div></section>'
    )


STYLE = """
body{font:14px system-ui,sans-serif;margin:1em 2em;color:#222}
table{border-collapse:collapse;margin:0 1.5em .8em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
.row,.hists{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}
.hist rect{fill:#3a7bd5}.hist .t{font-size:11px;font-weight:600}
.hist .c{font-size:10px;fill:#555}.hist .axis{stroke:#999}
#gallery{display:flex;flex-direction:column;gap:8px}
.panel{border:1px solid #ddd;padding:6px;display:flex;gap:10px;align-items:flex-start}
.panel img{height:96px}.panel .meta{font-size:12px}.panel .meta b{font-size:13px}
.ok{border-left:5px solid #2a2}.refused{border-left:5px solid #d90}.failed{border-left:5px solid #c22}
.panel dl{display:grid;grid-template-columns:auto auto auto auto;gap:0 8px;margin:4px 0}
.panel dt{color:#666}.panel dd{margin:0}
#nav{margin:.6em 0}#report-status{color:#777;font-size:12px}
"""

SCRIPT = """
(function(){
const status=document.getElementById('report-status');
let errors=0;
function say(state,loaded,failed){status.dataset.state=state;status.dataset.loaded=loaded;
 status.dataset.failed=failed;status.dataset.errors=errors;status.dataset.ms=Math.round(performance.now());
 status.textContent=state+': '+loaded+' images loaded, '+failed+' failed, '+errors+' script errors, '+
 status.dataset.ms+' ms';}
window.addEventListener('error',function(e){errors++;status.dataset.lastError=String(e.message);say('error',0,0);});
const items=JSON.parse(document.getElementById('report-data').textContent);
const size=PAGE_SIZE;
let page=0,shown=items;
const gallery=document.getElementById('gallery');
const filter=document.getElementById('filter');
const label=document.getElementById('page');
const ENT={'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'};
function esc(s){return String(s).replace(/[&<>"']/g,c=>ENT[c]);}
function fmt(v){return (v===null||v===undefined||v==='')?'':(typeof v==='number'?Number(v.toPrecision(4)):v);}
function panel(it){
 let m='';
 if(it.m&&Object.keys(it.m).length){m='<details><summary>measurements</summary><dl>'+Object.keys(it.m).map(k=>
   '<dt>'+esc(k)+'</dt><dd>'+esc(fmt(it.m[k]))+'</dd>').join('')+'</dl></details>';}
 const img=it.t?(it.o?'<a href="'+esc(encodeURI(it.o))+'">':'')+'<img alt="photograph | overlay | probability" src="'+
   it.t+'">'+(it.o?'</a>':''):'';
 return '<div class="panel '+esc(it.s)+'">'+img+'<div class="meta"><b>'+esc(it.f)+'</b><br>'+esc(it.s)+
  (it.r&&it.s!=='refused'?': '+esc(it.r):'')+(it.v?' &middot; quality '+esc(it.v)+(it.q?' ('+esc(it.q)+')':''):'')+
  (it.vf!==null&&it.vf!==''?' &middot; vessels '+(100*it.vf).toFixed(1)+' % of FOV':'')+
  (it.sec!==null&&it.sec!==''?' &middot; '+fmt(it.sec)+' s':'')+m+'</div></div>';}
function render(){
 const pages=Math.max(1,Math.ceil(shown.length/size));
 page=Math.min(Math.max(page,0),pages-1);
 const part=shown.slice(page*size,(page+1)*size);
 gallery.innerHTML=part.map(panel).join('');
 label.textContent='page '+(page+1)+' of '+pages+' ('+shown.length+' images)';
 const imgs=[...gallery.querySelectorAll('img')];
 let loaded=0,failed=0;
 function done(){if(loaded+failed===imgs.length)say(errors?'error':'ready',loaded,failed);}
 imgs.forEach(im=>{if(im.complete&&im.naturalWidth>0){loaded++;}
   else{im.addEventListener('load',()=>{loaded++;done();});im.addEventListener('error',()=>{failed++;done();});}});
 done();}
filter.addEventListener('change',function(){const v=filter.value;
 shown=v==='all'?items:items.filter(it=>it.s===v||it.v===v);page=0;render();});
document.getElementById('prev').addEventListener('click',()=>{page--;render();});
document.getElementById('next').addEventListener('click',()=>{page++;render();});
render();
})();
"""


def render_report(out_dir: str | Path, summary: Mapping, measure: bool | None = None) -> str:
    """The HTML text of the report for ``summary`` (the content of ``out_dir/summary.json``)."""
    out_dir = Path(out_dir)
    if measure is None:
        measure = any("measurements" in e for e in summary.get("images", []))
    rows = summary_rows(summary, measure)
    items = _items(out_dir, summary, rows, measure)
    data = json.dumps(items, separators=(",", ":")).replace("</", "<\\/")
    options = "".join(
        f'<option value="{v}">{v}</option>' for v in ("all", "ok", "refused", "failed", "good", "usable", "reject")
    )
    title = f"Vessel segmentation report: {len(rows)} inputs"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data: 'self'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{_overview(summary, rows, measure)}"
        f"<h2>Images</h2><p>Each strip: photograph | overlay | probability (click: full-size overlay).</p>"
        f'<div id="nav"><select id="filter">{options}</select> <button id="prev">previous</button> '
        f'<span id="page"></span> <button id="next">next</button></div><div id="gallery"></div>'
        '<p id="report-status" data-state="loading">loading</p>'
        f'<script type="application/json" id="report-data">{data}</script>'
        f"<script>{SCRIPT.replace('PAGE_SIZE', str(PAGE_SIZE))}</script></body></html>\n"
    )


def write_report(out_dir: str | Path, summary: Mapping, measure: bool | None = None) -> Path:
    """Write ``out_dir/report.html`` atomically; returns its path."""
    path = Path(out_dir) / REPORT_HTML
    text = render_report(out_dir, summary, measure)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
