"""The report as a document: pure functions that lay out blocks (headings, paragraphs, images, tables) and
render the same blocks to Markdown (renders on GitHub) and to one self-contained HTML page (images
embedded as data URIs). Reading the pipeline's outputs is the report stage's job (stages/report.py).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import Any, Callable, Union

from vaelab.errors import ReportError


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str            # plain text; `code` and **bold** are kept in Markdown and rendered in HTML
    italic: bool = False


@dataclass(frozen=True)
class Image:
    path: str            # relative to reports/
    alt: str


Cell = Union[str, Image, None]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Cell]]


Block = Union[Heading, Para, Image, Table]
NA = "n/a"
MISSING = "—"


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _md_cell(cell: Cell) -> str:
    if cell is None:
        return NA
    if isinstance(cell, Image):
        return f"![{cell.alt}]({cell.path})"
    return cell.replace("|", "\\|").replace("\n", "<br>")


def render_markdown(title: str, blocks: list[Block]) -> str:
    parts = [f"# {title}"]
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Para):
            parts.append(f"*{b.text}*" if b.italic else b.text)
        elif isinstance(b, Image):
            parts.append(f"![{b.alt}]({b.path})")
        else:
            lines = ["| " + " | ".join(_md_cell(h) for h in b.header) + " |", "|" + " --- |" * len(b.header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _inline_html(text: str) -> str:
    """Escape, then render `code` and **bold** (the only Markdown the report's prose uses)."""
    out = html.escape(text)
    for mark, tag in (("**", "b"), ("`", "code")):
        pieces = out.split(mark)
        out = "".join(p if i % 2 == 0 else f"<{tag}>{p}</{tag}>" for i, p in enumerate(pieces))
    return out


def render_html(title: str, blocks: list[Block], image: Callable[[str], bytes]) -> str:
    """The same report as one HTML file; ``image(rel_path)`` returns a figure's PNG bytes to embed."""
    def img(b: Image) -> str:
        data = base64.b64encode(image(b.path)).decode()
        return f'<img alt="{html.escape(b.alt)}" src="data:image/png;base64,{data}">'

    def cell(c: Cell) -> str:
        return NA if c is None else img(c) if isinstance(c, Image) else _inline_html(c)

    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title><style>"
             "body{font-family:sans-serif;max-width:1500px;margin:auto} td,th{border:1px solid #ccc;padding:4px;"
             "vertical-align:top} table{border-collapse:collapse} td img{width:100%}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{_inline_html(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            parts.append(f"<p><i>{_inline_html(b.text)}</i></p>" if b.italic else f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Image):
            parts.append(img(b))
        else:
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
    return "\n".join(parts) + "\n</body></html>\n"
