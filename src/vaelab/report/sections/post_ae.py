"""Section "What it took to reproduce the post": the post's autoencoder as written (its collapse, and why, in numbers
from metrics/collapse.json), as made to work (the setting the post_ae sweep chose, reports/post_ae.md) and
vaelab's batch-norm AE, side by side."""

from __future__ import annotations

from vaelab.report.render import Block, Cell, Heading, Image, Para, Table
from vaelab.report.sections.cells import Inputs, interval_cells, mean_ci_of
from vaelab.report.sections.figures import FIGURE_CAPTIONS
from vaelab.viz.model_figures import model_label

SHOWN = ("latent", "latent_by_digit", "manifold")


def mechanism(name: str, numbers: dict) -> str:
    """Two sentences on why ``name`` collapsed (or did not), from its first steps' summary."""
    s = numbers["summary"]
    if s["half_in_tail_at"] is None:
        return (f"{model_label(name)} over its first {s['steps']} steps: the codes of a batch start "
                f"{s['spread_first']:.3f} apart (standard deviation of the sigmoid code) and end {s['spread_last']:.3f} "
                f"apart, {s['tail_share_last']:.0%} of the coordinates past the sigmoid's flat tails (|pre-sigmoid "
                f"code| > 6), and the gradient reaching the encoder's first layer is still {s['grad_last']:.3g} "
                f"(peak {s['grad_peak']:.3g}): it does not collapse.")
    return (f"{model_label(name)} collapses as follows. At the first step the codes of a batch are "
            f"{s['spread_first']:.4f} apart (standard deviation of the sigmoid code), so every image looks alike to "
            f"the decoder and the optimiser pushes all codes the same way: by step {s['half_in_tail_at']} half the "
            f"code coordinates are past the sigmoid's flat tails (|pre-sigmoid code| > 6), and by step {s['steps']} "
            f"{s['tail_share_last']:.0%} are, at a mean |pre-sigmoid code| of {s['pre_abs_last']:.0f}. There the "
            f"sigmoid passes no gradient: the one reaching the encoder's first layer falls from its peak "
            f"{s['grad_peak']:.3g} to {s['grad_last']:.3g}, every image keeps the same code, and only the decoder "
            "learns, to draw the mean digit.")


def post_ae_blocks(inp: Inputs) -> list[Block]:
    shown = [m for m in inp.post_ae if m in inp.models]
    if not shown:
        return []

    def row(label: str, key: str) -> list[Cell]:
        return [label, *interval_cells([mean_ci_of(inp, m, key) for m in shown])]
    heads = ["", *(model_label(m) for m in shown)]
    return [
        Heading("What it took to reproduce the post"),
        Para("The post's autoencoder is four linear layers a side with ReLU, one hidden width, a sigmoid on the 2-D "
             "code and no normalisation; the post leaves open the width, the optimiser, the learning rate, the batch "
             "size, the initialisation and the epochs. `reports/post_ae.md` is the seeded search over them (a DVC "
             "sweep). Side by side: " + "; ".join(f"{model_label(m)}: {text}" for m, text in inp.post_ae.items()
                                                    if m in inp.models) + "."),
        *(Para(mechanism(m, numbers)) for m, numbers in inp.collapse.items()),
        Table(heads, [
            row("saturated codes (a coordinate within 0.01 of 0 or 1)", "latent.saturated_fraction"),
            row("test squared error per image", "reconstruction.mse_per_image"),
            row("kNN digit accuracy of the codes", "latent.knn_accuracy")]),
        Table(heads, [[FIGURE_CAPTIONS[k][0], *(Image(f"figures/{m}/{k}.png", f"{model_label(m)} {k}")
                                                if k in inp.figures.get(m, []) else None for m in shown)]
                      for k in SHOWN]),
    ]
