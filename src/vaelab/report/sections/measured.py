"""Section "Continuity and sharpness, measured": the post's words as numbers, every model side by side."""

from __future__ import annotations

from vaelab.measures.continuity import FINE_STEPS
from vaelab.report.render import Block, Heading, Para, Table
from vaelab.report.sections.cells import Inputs, interval_cells, mean_ci_of, reference_cell, reference_value
from vaelab.viz.model_figures import model_label

MEASURED_ROWS = [  # (label, metric key of metrics/eval/<model>.json): the post's words, measured
    ("jump ratio of the paths (1 = even; lower is smoother; — for a collapsed model)", "continuity.jump_ratio"),
    ("  … different digits", "continuity.jump_ratio_different"),
    ("  … same digit", "continuity.jump_ratio_same"),
    ("median path length / end distance", "continuity.path_ratio_median"),
    ("share of in-between images that look real", "continuity.real_share"),
    (f"share of paths with a break (it persists when decoded at {FINE_STEPS} points)", "continuity.break_share"),
    ("own grid: share of tiles that look real", "grid.own_real_share"),
    ("own grid: share of cells with no test code", "grid.empty_share"),
    ("  … of which decode to something unreal", "grid.empty_unreal_share"),
    ("  … its floor: the share a Gaussian cloud of the codes' shape leaves", "grid.empty_floor"),
    ("  … above that floor", "grid.empty_excess"),
    ("latent neighbours are image neighbours (trustworthiness, 1 = all)", "latent.trustworthiness"),
    ("rate: KL(q(z|x) ‖ p(z)) per test image, bits (β and the decoder's σ set it)", "elbo.kl_bits"),
    ("reconstructions: background intensity (data: 0)", "sharpness.recon_background"),
    ("reconstructions: mid-grey share", "sharpness.recon_midgrey"),
    ("reconstructions: stroke gradient", "sharpness.recon_gradient"),
    ("prior samples: background intensity (more than 2 px from ink)", "sharpness.sample_background"),
    ("prior samples: mid-grey share", "sharpness.sample_midgrey"),
    ("prior samples: stroke gradient", "sharpness.sample_gradient"),
    ("decoded latent grid: background intensity (more than 2 px from ink)", "sharpness.grid_background_own"),
    ("decoded latent grid: mid-grey share", "sharpness.grid_midgrey"),
    ("squared error / image (a column, not the test)", "reconstruction.mse_per_image"),
    ("FID of prior samples", "samples.fid"),
]



DATA_ROWS = [("test images: background intensity, own (far from ink)", "sharpness.data_background_own"),
             ("test images: mid-grey share", "sharpness.data_midgrey"),
             ("test images: stroke gradient", "sharpness.data_gradient")]



STYLE_ROWS = [("label accuracy (the judge calls the label asked for)", "style.label_accuracy"),
              ("slant: share of its variance held by z", "style.slant_z_share"),
              ("stroke width: share of its variance held by z", "style.width_z_share")]



def measured_blocks(inp: Inputs) -> list[Block]:
    """"Continuity and sharpness, measured": the post's words as numbers, every model side by side, with the test
    images' own values as the sharpness reference, and the conditional model's style."""
    def table(rows: list[tuple[str, str]], models: list[str]) -> Table:
        return Table(["", *[model_label(m) for m in models]],
                     [[label, *interval_cells([mean_ci_of(inp, m, key) for m in models])] for label, key in rows
                      if any(mean_ci_of(inp, m, key) for m in models)])
    shown = [m for m in inp.models if mean_ci_of(inp, m, "sharpness.recon_midgrey")]
    if not shown:
        return []
    blocks: list[Block] = [
        Heading("Continuity and sharpness, measured"),
        Para("The post's words as numbers (`continuity.*`, `grid.*`, `sharpness.*` of `metrics/eval/<model>.json`), "
             "mean ± 95% interval over seeds, on all test images. **Continuity**: fixed pairs of test images (of "
             "different digits and of the same digit, drawn once by `evaluate.continuity_seed`: the same pairs for "
             "every model), each joined by a straight line between its two codes (the AE inside its box, a VAE in "
             "z) and decoded at `evaluate.continuity_steps` points; a jump (one step much larger than the mean "
             "step) is what a fragmented latent looks like, or a path that speeds up; a *break* is a jump that keeps "
             f"its size when the path is decoded at {FINE_STEPS} points, which a speed-up does not. An image *looks "
             "real* when its 5th-neighbour distance to the real test images, in the judge's features, is within the "
             "95% quantile of the real images' "
             "own: a test of \"near the data\", not of class confidence, so an in-between 3/8 can pass. **Own "
             "grid**: a grid over each model's per-axis 1–99% code quantiles, so every grid covers its data; its "
             "empty cells hold no test code (the post's empty areas). **Sharpness** (\"less background colour\", "
             "\"the numbers are clearer\"): the mean intensity on the pixels that are 0 in the input (reconstructions) "
             "or more than 2 px from the image's own ink (prior samples, the decoded grid), the share of "
             "mid-grey pixels (0.1–0.9), the mean gradient on the stroke's edge; squared error is a column, not "
             "the test (it rewards blur). A lower **rate** (less information in the code) blurs by itself, so the "
             "sharpness claims are tested twice: against the post's σ = 1 Gaussian VAE, and against the same "
             "model at the β whose rate matches the Bernoulli VAE's (params.yaml `vae_mse_matched`, its β from the "
             "rate–distortion sweep, [reports/rd.md](rd.md))."),
        table(MEASURED_ROWS, shown)]
    if any(reference_value(inp, key) is not None for _, key in DATA_ROWS):
        blocks += [Para("The test images themselves, by the same statistics (the same for every model; "
                        "`metrics/references.json`):"),
                   Table(["", "test images"], [[label, reference_cell(inp, key)] for label, key in DATA_ROWS])]
    styled = [m for m in inp.models if mean_ci_of(inp, m, "style.slant_z_share")]
    if styled:
        blocks += [Para("**The conditional model's style.** Test codes decoded under every label 0–9: does the "
                        "decoder follow the label, and do slant (the shear of the image moments) and stroke width "
                        "(twice the ink area over its boundary) stay with the code? A share near 1 means the style "
                        "is held by z whatever the label."),
                   table(STYLE_ROWS, styled)]
    return blocks
