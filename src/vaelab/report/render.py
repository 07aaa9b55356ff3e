"""The report as a document: pure functions that lay out blocks (headings, a table of contents, paragraphs,
images, galleries, tables) and render the same blocks to Markdown (renders on GitHub and in MLflow's preview)
and to one self-contained HTML page (images embedded as WebP data URIs, each opening full size on a click).
Reading the pipeline's outputs is the report stage's job (stages/report.py).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import re
from dataclasses import dataclass
from typing import Callable, Union

from PIL import Image as PILImage

# The one sign for "nothing to show here": a metric a model does not have, a figure a model cannot draw.
MISSING = "—"
# Embedded images: lossy WebP at a fixed quality and effort keeps the page under 4 MB (as PNG: 13.5 MB) with digits
# and chart lines still sharp, in a few seconds (effort 6 saves 3% more and takes five times as long); Pillow
# writes no timestamp or metadata, so the same PNG always gives the same bytes.
WEBP_QUALITY, WEBP_METHOD = 75, 4


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Contents:
    """A table of contents: a link to every level-2 heading of the report, in order."""


@dataclass(frozen=True)
class Para:
    text: str            # plain text; `code` and **bold** are kept in Markdown and rendered in HTML
    italic: bool = False


@dataclass(frozen=True)
class Image:
    path: str            # relative to reports/
    alt: str


@dataclass(frozen=True)
class Gallery:
    """Labelled figures of one kind: cards that wrap to the page's width in HTML, rows of ``columns`` figures
    (a label row over an image row) in Markdown."""
    items: list[tuple[str, Image]]
    columns: int = 5


Cell = Union[str, Image, None]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Cell]]


Block = Union[Heading, Contents, Para, Image, Gallery, Table]


def anchor(text: str) -> str:
    """The id GitHub gives a heading (lower case, punctuation dropped, spaces to hyphens), so that the table of
    contents' links work in report.md on GitHub and in report.html alike."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def _anchors(blocks: list[Block]) -> list[str]:
    """Each block's anchor ('' for non-headings); a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = []
    for b in blocks:
        if not isinstance(b, Heading):
            out.append("")
            continue
        slug = anchor(b.text)
        out.append(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return out


def _contents(blocks: list[Block]) -> list[tuple[str, str]]:
    return [(b.text, a) for b, a in zip(blocks, _anchors(blocks)) if isinstance(b, Heading) and b.level == 2]


def _md_cell(cell: Cell) -> str:
    if cell is None:
        return MISSING
    if isinstance(cell, Image):
        return f"![{cell.alt}]({cell.path})"
    return cell.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[Cell], rows: list[list[Cell]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows])


def _md_gallery(g: Gallery) -> str:
    """The first row's labels are the table's header; each further row of figures has its labels above it."""
    chunks = [g.items[i:i + g.columns] for i in range(0, len(g.items), g.columns)]
    width = min(g.columns, len(g.items))

    def pad(cells: list[Cell]) -> list[Cell]:
        return cells + [""] * (width - len(cells))

    rows: list[list[Cell]] = []
    for i, chunk in enumerate(chunks):
        if i:
            rows.append(pad([f"**{label}**" for label, _ in chunk]))
        rows.append(pad([img for _, img in chunk]))
    return _md_table(pad([label for label, _ in chunks[0]]), rows)


def render_markdown(title: str, blocks: list[Block]) -> str:
    parts = [f"# {title}"]
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Contents):
            parts.append("\n".join(f"- [{text}](#{a})" for text, a in _contents(blocks)))
        elif isinstance(b, Para):
            parts.append(f"*{b.text}*" if b.italic else b.text)
        elif isinstance(b, Image):
            parts.append(f"![{b.alt}]({b.path})")
        elif isinstance(b, Gallery):
            parts.append(_md_gallery(b))
        else:
            parts.append(_md_table(b.header, b.rows))
    return "\n\n".join(parts) + "\n"


def _inline_html(text: str) -> str:
    """Escape, then render `code` and **bold** (the only Markdown the report's prose uses); "mean ± half-width"
    stays on one line in a narrow column."""
    out = html.escape(text).replace(" ± ", "\u00a0±\u00a0")
    for mark, tag in (("**", "b"), ("`", "code")):
        pieces = out.split(mark)
        out = "".join(p if i % 2 == 0 else f"<{tag}>{p}</{tag}>" for i, p in enumerate(pieces))
    return out


def web_image(png: bytes) -> bytes:
    """A figure's PNG re-encoded as WebP for embedding (same size, alpha kept, lossy at :data:`WEBP_QUALITY`)."""
    with PILImage.open(io.BytesIO(png)) as im:
        out = io.BytesIO()
        im.save(out, format="WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return out.getvalue()


# Readable from 360 px to wide screens; every figure opens full size on a click (CSS :target: the link's
# target becomes a full-window overlay, a click anywhere on it goes back to the figure's place).
CSS = ("body{font-family:system-ui,sans-serif;line-height:1.45;color:#222;max-width:1200px;margin:0 auto;"
       "padding:8px 32px 64px}"
       "@media (max-width:700px){body{padding:4px 12px 32px}}"
       "table{border-collapse:collapse;margin:12px 0;display:block;overflow-x:auto;max-width:100%}"
       "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top}th{background:#f4f4f4}"
       "td{font-variant-numeric:tabular-nums}td img{width:100%;min-width:200px}"
       "img{max-width:100%;height:auto}code{background:#f4f4f4;padding:0 2px}"
       ".gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px;margin:12px 0}"
       ".card{margin:0;border:1px solid #ddd;padding:6px}.card figcaption{font-weight:bold;margin-bottom:4px}"
       "a.zoom img{cursor:zoom-in}a.back{display:none}"
       "a.zoom:target{position:fixed;inset:0;z-index:9;background:rgba(0,0,0,.85);display:flex;"
       "align-items:center;justify-content:center}"
       "a.zoom:target img{width:auto;min-width:0;max-width:96vw;max-height:96vh;background:#fff}"
       "a.zoom:target+a.back{display:block;position:fixed;inset:0;z-index:10;cursor:zoom-out}")


def render_html(title: str, blocks: list[Block], image: Callable[[str], bytes]) -> str:
    """The same report as one HTML file; ``image(rel_path)`` returns a figure's PNG bytes to embed."""
    count = itertools.count(1)   # ids of the figures' overlays

    def img(b: Image) -> str:
        n = next(count)
        data = base64.b64encode(web_image(image(b.path))).decode()
        return (f'<span id="f{n}"></span><a class="zoom" id="z{n}" href="#z{n}" title="open full size">'
                f'<img alt="{html.escape(b.alt)}" src="data:image/webp;base64,{data}"></a>'
                f'<a class="back" href="#f{n}" aria-label="close"></a>')

    def cell(c: Cell) -> str:
        return MISSING if c is None else img(c) if isinstance(c, Image) else _inline_html(c)

    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for b, a in zip(blocks, _anchors(blocks)):
        if isinstance(b, Heading):
            parts.append(f'<h{b.level} id="{a}">{_inline_html(b.text)}</h{b.level}>')
        elif isinstance(b, Contents):
            parts.append("<nav><ul>" + "".join(f'<li><a href="#{t_a}">{_inline_html(t)}</a></li>'
                                               for t, t_a in _contents(blocks)) + "</ul></nav>")
        elif isinstance(b, Para):
            parts.append(f"<p><i>{_inline_html(b.text)}</i></p>" if b.italic else f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Image):
            parts.append(f"<p>{img(b)}</p>")
        elif isinstance(b, Gallery):
            parts.append('<div class="gallery">' + "".join(
                f'<figure class="card"><figcaption>{_inline_html(label)}</figcaption>{img(i)}</figure>'
                for label, i in b.items) + "</div>")
        else:
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
    return "\n".join(parts) + "\n</body></html>\n"
