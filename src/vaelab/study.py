"""The study's report, laid out as blocks (:mod:`vaelab.reporting`): which sections it has, what the
captions say, and how the per-seed numbers become mean ± 95% interval tables. Pure: the report stage
reads the pipeline's outputs into :class:`Inputs` and renders what :func:`report_blocks` returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vaelab import claims, stats
from vaelab.config import flatten
from vaelab.reporting import MISSING, Block, Heading, Image, Para, Table, fmt
from vaelab.viz.model_figures import KINDS, model_label

# One row per figure kind: (title, the post's claim it checks).
FIGURE_CAPTIONS = {
    "reconstructions": ("Reconstructions", "Two numbers per image suffice for recognisable digits; the post says "
                        "the Bernoulli (BCE) decoder draws sharper strokes than the squared-error models."),
    "latent": ("Latent space", "The AE scatters the digits over its unit square in irregular clusters with "
               "gaps; the VAEs' KL term packs them into one round cloud centred on 0, like N(0, I)."),
    "latent_by_digit": ("Latent space by digit", "Each digit occupies its own region; a VAE's regions are "
                        "compact and contiguous, an AE's are long thin streaks."),
    "manifold": ("Decoded latent grid", "Decoding evenly spaced points: the VAEs turn every point into a "
                 "digit and morph smoothly between classes, the AE leaves regions that decode to non-digits."),
    "prior_samples": ("Samples from the prior", "Only a model with a prior is generative: decoding z ~ N(0, I) "
                      "gives new digits (the AE has no prior to sample)."),
    "interpolations": ("Latent interpolations", "Along a straight line between two codes a VAE's in-between "
                       "images stay digits; an AE's pass through shapes that are not digits."),
    "class_samples": ("One code, every label", "Conditional models only: each column decodes one z ~ N(0, I) "
                      "with the labels 0-9 (rows). The label picks the digit, z the style: slant and "
                      "thickness stay the same down a column."),
    "style_transfer": ("Style transfer", "Conditional models only: a test image (left) encoded with its own "
                       "label, its code decoded with every label: the digits change, its handwriting stays."),
}
LOSS_CAPTION = ("Test loss per epoch (first seed). Each model is scored by its own loss (summed squared error for "
                "the AEs, the normalised negative ELBO of its own decoder for the VAEs), so compare the shapes of "
                "the curves, not their heights.")


@dataclass(frozen=True)
class Inputs:
    """Everything the report shows, read from the pipeline's outputs."""

    models: list[str]
    seeds: list[int]
    figures: dict[str, list[str]]            # model -> figure kinds drawn (files in reports/figures/<model>/)
    train: dict[str, dict[int, dict]]        # model -> seed -> final train/test terms
    evals: dict[str, dict[int, dict]]        # model -> seed -> evaluation metrics
    verdicts: list[claims.Verdict]
    judge_accuracy: float | None = None
    post_ae: dict[str, str] = field(default_factory=dict)  # "collapsed" model -> the working model it is compared to


def interval_table(per_model: dict[str, dict[int, dict]], models: list[str]) -> Table:
    """Rows [metric, mean ± 95% interval per model] over the union of flattened keys, first-seen order."""
    flat = {m: {s: flatten(v) for s, v in per_model.get(m, {}).items()} for m in models}
    keys = list(dict.fromkeys(k for m in models for per_seed in flat[m].values() for k in per_seed))
    rows = []
    for key in keys:
        cells = []
        for m in models:
            values = [v[key] for v in flat[m].values() if key in v and math.isfinite(v[key])]
            cells.append(stats.format_interval(stats.mean_ci(values)) if values else MISSING)
        rows.append([f"`{key}`", *cells])
    return Table(["metric", *[model_label(m) for m in models]], rows)


def claims_blocks(verdicts: list[claims.Verdict]) -> list[Block]:
    rows = [[v.spec.claim, f"`{v.spec.metric}` ({v.spec.better} is better), {model_label(v.spec.model)} vs "
             f"{model_label(v.spec.baseline)}", ", ".join(fmt(d, 3) for d in v.differences),
             stats.format_interval(v.interval), f"**{v.verdict}**"] for v in verdicts]
    return [Heading("The post's claims, tested over seeds"),
            Para(f"Rule: {claims.RULE} Also in `metrics/claims.json`."),
            Table(["claim", "metric", "per-seed differences", "mean ± 95% interval", "verdict"], rows)]


def post_ae_blocks(inp: Inputs) -> list[Block]:
    blocks: list[Block] = []
    for post, working in inp.post_ae.items():
        def mean(model: str, key: str) -> str:
            values = [flatten(v).get(key) for v in inp.evals.get(model, {}).values()]
            values = [v for v in values if v is not None]
            return stats.format_interval(stats.mean_ci(values)) if values else MISSING
        blocks += [
            Heading("What it took to reproduce the post"),
            Para(f"{model_label(post)} is the post's autoencoder exactly as written: four linear layers with ReLU "
                 "and a sigmoid on the 2-D code, no normalisation. Trained as written it collapses: Adam drives the "
                 "pre-sigmoid code far into the sigmoid's flat tails within a few steps, the codes pile up in the "
                 "corners of the unit square, and the decoder learns to draw the mean digit. "
                 f"{model_label(working)} adds one batch-norm on the code (before the sigmoid), which keeps it on "
                 "the sigmoid's slope."),
            Table(["", model_label(post), model_label(working)], [
                ["saturated codes (a coordinate within 0.01 of 0 or 1)", mean(post, "latent.saturated_fraction"),
                 mean(working, "latent.saturated_fraction")],
                ["test squared error per image", mean(post, "reconstruction.mse_per_image"),
                 mean(working, "reconstruction.mse_per_image")],
                ["kNN digit accuracy of the codes", mean(post, "latent.knn_accuracy"),
                 mean(working, "latent.knn_accuracy")]]),
            Table(["", model_label(post), model_label(working)], [
                [FIGURE_CAPTIONS[k][0], *(Image(f"figures/{m}/{k}.png", f"{model_label(m)} {k}")
                                          if k in inp.figures.get(m, []) else None for m in (post, working))]
                for k in ("reconstructions", "latent", "manifold")]),
        ]
    return blocks


def report_blocks(inp: Inputs) -> list[Block]:
    labels = [model_label(m) for m in inp.models]
    n = len(inp.seeds)
    figure_rows = [[f"**{title}**<br>{caption}",
                    *(Image(f"figures/{m}/{kind}.png", f"{model_label(m)} {title}") if kind in inp.figures[m] else None
                      for m in inp.models)]
                   for kind, (title, caption) in FIGURE_CAPTIONS.items() if kind in KINDS]
    blocks: list[Block] = [
        Para("Written by the `report` stage of `dvc repro`; every picture and number below is an output of the "
             f"pipeline. Each model was trained with {n} seed{'s' if n > 1 else ''} ({', '.join(map(str, inp.seeds))}); "
             "pictures show the first seed, numbers are the mean ± the half-width of a 95% Student-t interval over "
             "seeds (per-seed values: `metrics/train/<model>.json`, `metrics/eval/<model>.json`). "
             "Likelihoods are in nats per image."),
        Heading("The data"), Image("study/data.png", "MNIST training images"),
        *claims_blocks(inp.verdicts),
        Heading("The models side by side"), Table(["", *labels], figure_rows),
        *post_ae_blocks(inp),
        Heading("Training"), Image("study/test_loss.png", "test loss per epoch"), Para(LOSS_CAPTION, italic=True),
        Heading("Final losses"), Para("Read from `metrics/train/<model>.json` (last epoch)."),
        interval_table(inp.train, inp.models),
        Heading("Evaluation"),
        Para("Read from `metrics/eval/<model>.json`. `reconstruction.*`: squared error of the decoded posterior "
             "mean; `elbo.*`, `iwae.nll`: nats per image under the model's own decoder (not comparable across "
             "decoders); `latent.*`: kNN digit accuracy and silhouette of the test codes; `grid.confident_fraction`: "
             "share of the decoded latent grid the judge calls a digit with confidence. Conditional models are "
             "scored given the true label (`elbo.*`, `iwae.nll_given_y` bound −log p(x|y)); `iwae.nll_marginal`, "
             "−log p(x) over the ten labels, is the one comparable with `iwae.nll`; `conditional.accuracy`: share "
             "of samples drawn for label k that the judge calls k"
             + (f" (judge test accuracy {inp.judge_accuracy:.4f})." if inp.judge_accuracy is not None else ".")),
        interval_table(inp.evals, inp.models),
    ]
    return blocks
