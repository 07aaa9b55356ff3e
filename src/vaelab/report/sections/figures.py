"""Section "The models side by side": one gallery per figure kind, with the captions that say what each checks."""

from __future__ import annotations

from vaelab.report.render import Block, Gallery, Heading, Image, Para
from vaelab.report.sections.cells import Inputs
from vaelab.viz.model_figures import KINDS, model_label

# One row per figure kind: (title, the post's claim it checks).
FIGURE_CAPTIONS = {
    "reconstructions": ("Reconstructions", "Two numbers per image suffice for recognisable digits. The post says "
                        "the Bernoulli (BCE) decoder draws sharper strokes: see the claims table for the verdict."),
    "latent": ("Latent space", "The test codes coloured by digit: an AE's lie in its unit square (the post's AE "
               "as written puts every image on one point), a VAE's KL term packs them into one round cloud centred "
               "on 0, like N(0, I)."),
    "latent_by_digit": ("Latent space by digit", "Each digit occupies its own region. The post says a VAE's "
                        "regions are more compact and contiguous than an AE's: the claims table tests it (kNN digit vote, "
                        "trustworthiness)."),
    "manifold": ("Decoded latent grid", "Decoding evenly spaced points. The post says the VAEs turn every point "
                 "into a digit and the AE leaves regions of non-digits. This grid spans the AE's box and the VAEs' "
                 "N(0, 1) quantiles 0.05–0.95, so the two cover different things; \"Continuity and sharpness, "
                 "measured\" scores a grid over each model's own codes instead."),
    "own_grid": ("Decoded grid over each model's own codes", "The same number of tiles over the per-axis 1–99% "
                 "quantiles of the model's test codes, so that every grid covers its data; its realness and empty "
                 "cells are in \"Continuity and sharpness, measured\"."),
    "prior_samples": ("Samples from the prior", "Only a model with a prior is generative: decoding z ~ N(0, I) "
                      "gives new digits (the AE has no prior to sample)."),
    "interpolations": ("Latent interpolations", "Straight lines between the codes of two test digits, decoded: "
                       "the post expects a VAE's in-between images to stay digits more often than an AE's "
                       "(\"Continuity and sharpness, measured\" scores 1,000 such paths per model)."),
    "class_samples": ("One code, every label", "Conditional models only: each column decodes one z ~ N(0, I) "
                      "with the labels 0-9 (rows). The label picks the digit, z the style: slant and "
                      "thickness stay the same down a column."),
    "style_transfer": ("Style transfer", "Conditional models only: a test image (left) encoded with its own "
                       "label, its code decoded with every label: the digits change, its handwriting stays."),
}



LOSS_CAPTION = ("Test loss per epoch (first seed). Each model is scored by its own loss (summed squared error for "
                "the AEs, the normalised negative ELBO of its own decoder for the VAEs), so compare the shapes of "
                "the curves, not their heights.")



def figure_blocks(inp: Inputs) -> list[Block]:
    """"The models side by side": one gallery per figure kind, every model that draws it (first seed)."""
    blocks: list[Block] = [
        Heading("The models side by side"),
        Para("One gallery per figure, every model that draws it (first seed); in report.html a click on a figure "
             "opens it full size.")]
    for kind, (title, caption) in FIGURE_CAPTIONS.items():
        items = [(model_label(m), Image(f"figures/{m}/{kind}.png", f"{model_label(m)} {title}"))
                 for m in inp.models if kind in inp.figures[m]]
        if kind in KINDS and items:
            blocks += [Heading(title, 3), Para(caption), Gallery(items)]
    return blocks
