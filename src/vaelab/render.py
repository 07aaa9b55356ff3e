"""The comparison report rendered from its inputs: pure functions from tables and figure paths to Markdown
and to one self-contained HTML page (images embedded as data URIs). Reading the inputs is :mod:`vaelab.report`.
"""

from __future__ import annotations

import base64
import html
from typing import Any, Callable

# One row per figure kind: (title, the study's claim it checks).
CLAIMS = {
    "reconstructions": ("Reconstructions", "Two numbers per image suffice for recognisable digits; the "
                        "Bernoulli (BCE) decoder draws sharper strokes than the squared-error models."),
    "latent": ("Latent space", "The AE scatters the digits over its unit square in irregular clusters with "
               "gaps; the VAEs' KL term packs them into one round cloud centred on 0, like N(0, I)."),
    "latent_by_digit": ("Latent space by digit", "Each digit occupies its own region; a VAE's regions are "
                        "compact and contiguous, an AE's are long thin streaks."),
    "manifold": ("Decoded latent grid", "Decoding evenly spaced points: the VAEs turn every point into a "
                 "digit and morph smoothly between classes, the AE leaves regions that decode to non-digits."),
    "prior_samples": ("Samples from the prior", "Only a VAE is generative: decoding z ~ N(0, I) gives new "
                      "digits (the AE has no prior to sample)."),
    "interpolations": ("Latent interpolations", "Along a straight line between two codes a VAE's in-between "
                       "images stay digits; an AE's pass through shapes that are not digits."),
}
LOSS_CAPTION = ("Test loss per epoch. Each model is scored by its own loss (summed squared error, Gaussian or "
                "Bernoulli negative ELBO), so compare the shapes of the curves, not their heights.")
NA = "n/a"
MISSING = "—"
Tables = dict[str, tuple[str, list[list[str]]]]  # heading -> (source file pattern, rows [metric, value per model])
Rows = list[tuple[str, str, list[str | None]]]  # (title, claim, figure path under reports/ or None per model)


def fmt(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in lines)


def render_markdown(labels: list[str], rows: Rows, losses: str, tables: Tables) -> str:
    figs = [[f"**{title}**<br>{claim}", *(f"![{m} {title}]({p})" if p else NA for m, p in zip(labels, paths))]
            for title, claim, paths in rows]
    parts = ["# Autoencoder vs VAEs on MNIST", "", "Written by the `report` stage of `dvc repro`; every "
             "picture and number below is an output of the pipeline.", "", "## The data", "",
             "![MNIST training images](figures/data.png)", "", "## The models side by side", "",
             _md_table(["", *labels], figs), "", "## Training", "", f"![test loss]({losses})", "",
             f"*{LOSS_CAPTION}*"]
    for heading, (source, table) in tables.items():
        parts += ["", f"## {heading}", "", f"Read from `{source}`.", "", _md_table(["metric", *labels], table)]
    return "\n".join(parts) + "\n"


def render_html(labels: list[str], rows: Rows, losses: str, tables: Tables,
                image: Callable[[str], bytes]) -> str:
    """The same report as one HTML file; ``image(rel_path)`` returns a figure's PNG bytes to embed."""
    def img(rel: str, alt: str) -> str:
        data = base64.b64encode(image(rel)).decode()
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    def table(header: list[str], body: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        return f"<table><tr>{head}</tr>" + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
                                                  for r in body) + "</table>"

    figs = [[f"<b>{html.escape(title)}</b><br><small>{html.escape(claim)}</small>",
             *(img(p, f"{m} {title}") if p else NA for m, p in zip(labels, paths))]
            for title, claim, paths in rows]
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>vaelab report</title><style>"
             "body{font-family:sans-serif;max-width:1400px;margin:auto} td,th{border:1px solid #ccc;padding:4px;"
             "vertical-align:top} table{border-collapse:collapse} td img{width:100%} td:first-child{width:16%}"
             "</style></head><body><h1>Autoencoder vs VAEs on MNIST</h1>",
             "<h2>The data</h2>", img("figures/data.png", "MNIST training images"),
             "<h2>The models side by side</h2>", table(["", *labels], figs),
             "<h2>Training</h2>", img(losses, "test loss"), f"<p><i>{html.escape(LOSS_CAPTION)}</i></p>"]
    for heading, (source, body) in tables.items():
        cells = [[html.escape(c) for c in r] for r in body]
        parts += [f"<h2>{html.escape(heading)}</h2>", f"<p>Read from <code>{html.escape(source)}</code>.</p>",
                  table(["metric", *labels], cells)]
    return "\n".join(parts) + "\n</body></html>\n"
