"""The report as a document: blocks (headings, a table of contents, paragraphs, images, galleries, tables) written as
Markdown, the one source (renders on GitHub and in MLflow's preview), and that Markdown rendered by markdown-it-py
into one self-contained HTML page in a Jinja2 template (images embedded as WebP data URIs, each opening full size
on a click). Reading the pipeline's outputs is :mod:`vaelab.report.document`'s job.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import re
from dataclasses import dataclass
from typing import Callable, Union

import jinja2
import markupsafe
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_core import StateCore
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
    """Labelled figures of one kind: rows of ``columns`` figures, a label row over each image row (a table in
    Markdown, and so in the HTML page rendered from it)."""
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
       "a.zoom img{cursor:zoom-in}a.back{display:none}"
       "a.zoom:target{position:fixed;inset:0;z-index:9;background:rgba(0,0,0,.85);display:flex;"
       "align-items:center;justify-content:center}"
       "a.zoom:target img{width:auto;min-width:0;max-width:96vw;max-height:96vh;background:#fff}"
       "a.zoom:target+a.back{display:block;position:fixed;inset:0;z-index:10;cursor:zoom-out}")


# The page around the rendered Markdown (Jinja2 escapes the title; the body is markdown-it's own HTML).
PAGE = jinja2.Environment(autoescape=True).from_string(
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>\n"
    "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
    "<title>{{ title }}</title><style>{{ css }}</style></head><body>\n{{ body }}</body></html>\n")


def _markdown_it(image: Callable[[str], bytes]) -> MarkdownIt:
    """CommonMark with GitHub's tables; headings get GitHub's ids (so the contents' links work), every image is
    embedded as WebP and opens full size on a click, and "mean ± half-width" stays on one line."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    count = itertools.count(1)   # ids of the figures' overlays

    def ids(state: StateCore) -> None:
        seen: dict[str, int] = {}
        for i, token in enumerate(state.tokens):
            if token.type == "heading_open" and token.tag != "h1":
                slug = anchor(state.tokens[i + 1].content)
                token.attrSet("id", f"{slug}-{seen[slug]}" if slug in seen else slug)
                seen[slug] = seen.get(slug, 0) + 1

    def img(renderer, tokens, idx, options, env) -> str:
        n, token = next(count), tokens[idx]
        data = base64.b64encode(web_image(image(token.attrGet("src")))).decode()
        alt = html.escape(token.content)
        return (f'<span id="f{n}"></span><a class="zoom" id="z{n}" href="#z{n}" title="open full size">'
                f'<img alt="{alt}" src="data:image/webp;base64,{data}"></a>'
                f'<a class="back" href="#f{n}" aria-label="close"></a>')

    def text(renderer, tokens, idx, options, env) -> str:
        return escapeHtml(tokens[idx].content).replace(" ± ", "\u00a0±\u00a0")

    parser.core.ruler.push("github_heading_ids", ids)
    parser.add_render_rule("image", img)
    parser.add_render_rule("text", text)
    return parser


def render_html(title: str, blocks: list[Block], image: Callable[[str], bytes]) -> str:
    """The same report as one self-contained HTML page: report.md's Markdown (:func:`render_markdown`, the one
    source) rendered by markdown-it-py into a Jinja2 page; ``image(rel_path)`` returns a figure's PNG to embed."""
    body = _markdown_it(image).render(render_markdown(title, blocks))
    return PAGE.render(title=title, css=markupsafe.Markup(CSS), body=markupsafe.Markup(body))
