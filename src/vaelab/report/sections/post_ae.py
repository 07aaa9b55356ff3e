"""Section on the post's autoencoder as written: what collapsed, and the working AE it is compared with."""

from __future__ import annotations

from vaelab.report.render import Block, Cell, Heading, Image, Para, Table
from vaelab.report.sections.cells import Inputs, interval_cells, mean_ci_of
from vaelab.report.sections.figures import FIGURE_CAPTIONS
from vaelab.viz.model_figures import model_label


def post_ae_blocks(inp: Inputs) -> list[Block]:
    blocks: list[Block] = []
    for post, working in inp.post_ae.items():
        def row(label: str, key: str) -> list[Cell]:
            return [label, *interval_cells([mean_ci_of(inp, post, key), mean_ci_of(inp, working, key)])]
        blocks += [
            Heading("What it took to reproduce the post"),
            Para(f"{model_label(post)} is the post's autoencoder exactly as written: four linear layers with ReLU "
                 "and a sigmoid on the 2-D code, no normalisation. Trained as written it collapses: Adam drives the "
                 "pre-sigmoid code far into the sigmoid's flat tails within a few steps, the codes pile up in the "
                 "corners of the unit square, and the decoder learns to draw the mean digit. "
                 f"{model_label(working)} adds one batch-norm on the code (before the sigmoid), which keeps it on "
                 "the sigmoid's slope."),
            Table(["", model_label(post), model_label(working)], [
                row("saturated codes (a coordinate within 0.01 of 0 or 1)", "latent.saturated_fraction"),
                row("test squared error per image", "reconstruction.mse_per_image"),
                row("kNN digit accuracy of the codes", "latent.knn_accuracy")]),
            Table(["", model_label(post), model_label(working)], [
                [FIGURE_CAPTIONS[k][0], *(Image(f"figures/{m}/{k}.png", f"{model_label(m)} {k}")
                                          if k in inp.figures.get(m, []) else None for m in (post, working))]
                for k in ("reconstructions", "latent", "manifold")]),
        ]
    return blocks
