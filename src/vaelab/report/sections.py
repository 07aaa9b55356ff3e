"""The study's report, laid out as blocks (:mod:`vaelab.report.render`): which sections it has, what the
captions say, and how the per-seed numbers become mean ± 95% interval tables (one number format per metric).
Pure: the report stage reads the pipeline's outputs into :class:`Inputs` and renders what :func:`report_blocks`
returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vaelab.core import stats
from vaelab.core.config import flatten
from vaelab.core.errors import ReportError
from vaelab.core.stats import Interval
from vaelab.report.render import MISSING, Block, Cell, Contents, Gallery, Heading, Image, Para, Table
from vaelab.studies import claims
from vaelab.viz.model_figures import KINDS, model_label

# One row per figure kind: (title, the post's claim it checks).
FIGURE_CAPTIONS = {
    "reconstructions": ("Reconstructions", "Two numbers per image suffice for recognisable digits. The post says "
                        "the Bernoulli (BCE) decoder draws sharper strokes: see the claims table for the verdict."),
    "latent": ("Latent space", "The AE scatters the digits over its unit square in irregular clusters; "
               "the VAEs' KL term packs them into one round cloud centred on 0, like N(0, I)."),
    "latent_by_digit": ("Latent space by digit", "Each digit occupies its own region. The post says a VAE's "
                        "regions are more compact and contiguous than an AE's: the claims table tests it (kNN, silhouette)."),
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


@dataclass(frozen=True)
class Inputs:
    """Everything the report shows, read from the pipeline's outputs."""

    models: list[str]
    seeds: dict[str, list[int]]              # model -> its seeds (params.yaml `seeds`, or the entry's own)
    figures: dict[str, list[str]]            # model -> figure kinds drawn (files in reports/figures/<model>/)
    train: dict[str, dict[int, dict]]        # model -> seed -> final train/test terms
    evals: dict[str, dict[int, dict]]        # model -> seed -> evaluation metrics
    verdicts: list[claims.Verdict]
    image_sets: dict[str, dict[str, str]]               # model -> JSON group -> the id of its image set
    forks: list[dict[str, dict[str, claims.Verdict]]]   # per claim: role -> other model -> its verdict
    judge_accuracy: float | None = None
    post_ae: dict[str, str] = field(default_factory=dict)  # "collapsed" model -> the working model it is compared to
    inference: dict[str, dict] = field(default_factory=dict)  # metrics/inference.json
    sigma_figure: str | None = None                           # σ per epoch of the calibrated Gaussians
    fixed_sigma: tuple[str, ...] = ()                         # models whose Gaussian decoder has a fixed σ
    quadrants: dict = field(default_factory=dict)             # metrics/quadrants.json (quadrant completion)
    baselines: dict = field(default_factory=dict)             # metrics/baselines.json: image-set id -> baseline -> numbers
    references: dict = field(default_factory=dict)            # metrics/references.json: the same for every model


def _decimals(x: float, digits: int) -> int:
    """Decimal places that show ``x`` to ``digits`` significant digits."""
    return digits - 1 - math.floor(math.log10(abs(x))) if x else 0


def shared_decimals(intervals: list[stats.Interval | None]) -> int | None:
    """The decimal places of one metric's intervals (a table's row or column), so that they read alike: the
    narrowest nonzero half-width to 2 significant digits, so no model's interval loses its precision (no nonzero
    half-width: the largest mean to 4). None where fixed point would be unreadable (then each interval keeps
    :func:`stats.format_interval`'s own form)."""
    shown = [iv for iv in intervals if iv is not None and iv.defined]
    if not shown or len(shown) < len([iv for iv in intervals if iv is not None]):
        return None
    spreads = [float(f"{iv.half_width:.2g}") for iv in shown if iv.half_width > 0]
    decimals = max(0, _decimals(min(spreads), 2) if spreads else _decimals(max(abs(iv.mean) for iv in shown), 4))
    return None if decimals > 12 or any(abs(iv.mean) >= 1e12 for iv in shown) else decimals


def interval_cells(intervals: list[stats.Interval | None]) -> list[str]:
    """"mean ± half-width" for each interval of one metric, all to the same decimal places (a nonzero half-width
    too small for them shows as one unit of the last place, never as 0); :data:`MISSING` for None."""
    decimals = shared_decimals(intervals)

    def one(iv: stats.Interval | None) -> str:
        if iv is None:
            return MISSING
        if decimals is None:
            return stats.format_interval(iv)
        half = round(iv.half_width, decimals) or (10.0 ** -decimals if iv.half_width > 0 else 0.0)
        return f"{iv.mean:.{decimals}f} ± {half:.{decimals}f}"
    return [one(iv) for iv in intervals]


def number_cells(values: list[float | None], digits: int = 3) -> list[str]:
    """Plain numbers of one metric to the same decimal places: the largest to ``digits`` significant digits."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    decimals = max(0, _decimals(max(finite), digits)) if finite else 0
    return [f"{v:.{decimals}f}" if v is not None and math.isfinite(v) else MISSING for v in values]


def interval_table(per_model: dict[str, dict[int, dict]], models: list[str]) -> Table:
    """Rows [metric, mean ± 95% interval per model] over the union of flattened keys, first-seen order."""
    flat = {m: {s: flatten(v) for s, v in per_model.get(m, {}).items()} for m in models}
    keys = list(dict.fromkeys(k for m in models for per_seed in flat[m].values() for k in per_seed))
    rows = []
    for key in keys:
        per = [[v[key] for v in flat[m].values() if key in v and math.isfinite(v[key])] for m in models]
        rows.append([f"`{key}`", *interval_cells([stats.mean_ci(values) if values else None for values in per])])
    return Table(["metric", *[model_label(m) for m in models]], rows)


def _claim_numbers(v: claims.Verdict) -> tuple[str, str]:
    """A claim's per-seed differences and their interval, to the interval's decimal places."""
    decimals = shared_decimals([v.interval])
    if decimals is None:
        return ", ".join(f"{d:.3g}" for d in v.differences), stats.format_interval(v.interval)
    return ", ".join(f"{d:.{decimals}f}" for d in v.differences), interval_cells([v.interval])[0]


def _margin(v: claims.Verdict) -> str:
    return f"± {v.spec.margin:g}"


def _fork_cell(v: claims.Verdict | None) -> str:
    if v is None:
        return MISSING
    if not v.interval.defined:
        return f"{v.verdict} (n = {v.interval.n})"
    return f"{v.verdict} {stats.format_interval(v.interval, digits=1)}"


def fork_table(verdicts: list[claims.Verdict], forks: list[dict[str, dict[str, claims.Verdict]]], role: str,
               models: list[str]) -> Table:
    """One row per claim, one column per other model put in ``role``: its verdict and 95% interval (uncorrected)."""
    rows = [[f"{i + 1}. {model_label(v.spec.model) if role == 'baseline' else model_label(v.spec.baseline)}",
             *[_fork_cell(f.get(role, {}).get(m)) for m in models]] for i, (v, f) in enumerate(zip(verdicts, forks))]
    head = "claim: its fixed comparator" if role == "model" else "claim: its favoured model"
    return Table([head, *[model_label(m) for m in models]], rows)


def claims_blocks(verdicts: list[claims.Verdict], forks: list[dict[str, dict[str, claims.Verdict]]] | None = None,
                  models: list[str] | None = None) -> list[Block]:
    rows = [[f"{i + 1}. {v.spec.claim}", f"`{v.spec.metric}` ({v.spec.better} is better): {v.spec.why}",
             f"{model_label(v.spec.model)} vs {model_label(v.spec.baseline)} (n = {v.interval.n})",
             *_claim_numbers(v), f"{100 * v.interval.level:.2f}".rstrip("0").rstrip(".") + "%", _margin(v), f"**{v.verdict}**"]
            for i, v in enumerate(verdicts)]
    blocks: list[Block] = [
        Heading("The post's claims, tested over seeds"),
        Para(f"Rule: {claims.RULE} Also in `metrics/claims.json`."),
        Table(["claim", "metric, and why it tests the claim", "model vs comparator", "per-seed differences",
               "mean and interval", "level (Holm)", "margin", "verdict"], rows)]
    if forks and models:
        blocks += [
            Para("**Forking paths.** Each claim's comparator is fixed in params.yaml. Below, the same rule (95%, no "
                 "correction: these are not in the family) with every other model that has the metric in the "
                 "favoured model's place (first table) or in the comparator's place (second). A claim that holds "
                 "only for the chosen pair is visible here."),
            fork_table(verdicts, forks, "model", models),
            fork_table(verdicts, forks, "baseline", models)]
    return blocks


def post_ae_blocks(inp: Inputs) -> list[Block]:
    blocks: list[Block] = []
    for post, working in inp.post_ae.items():
        def row(label: str, key: str) -> list[Cell]:
            return [label, *interval_cells([_mean_ci(inp, post, key), _mean_ci(inp, working, key)])]
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


def _mean_ci(inp: Inputs, model: str, key: str) -> stats.Interval | None:
    values = [flatten(v).get(key) for v in inp.evals.get(model, {}).values()]
    values = [v for v in values if v is not None and math.isfinite(v)]
    return stats.mean_ci(values) if values else None


def _reference(inp: Inputs, key: str) -> float | None:
    """A number of ``metrics/references.json``: measured once, the same for every model and seed."""
    value = flatten(inp.references).get(key)
    return value if value is not None and math.isfinite(value) else None


def _reference_cell(inp: Inputs, key: str) -> str:
    return number_cells([_reference(inp, key)], digits=4)[0]


MEASURED_ROWS = [  # (label, metric key of metrics/eval/<model>.json): the post's words, measured
    ("jump ratio of the paths (1 = even; lower is smoother)", "continuity.jump_ratio"),
    ("  … different digits", "continuity.jump_ratio_different"),
    ("  … same digit", "continuity.jump_ratio_same"),
    ("median path length / end distance", "continuity.path_ratio_median"),
    ("share of in-between images that look real", "continuity.real_share"),
    ("own grid: share of tiles that look real", "grid.own_real_share"),
    ("own grid: share of cells with no test code", "grid.empty_share"),
    ("  … of which decode to something unreal", "grid.empty_unreal_share"),
    ("reconstructions: background intensity (data: 0)", "sharpness.recon_background"),
    ("reconstructions: mid-grey share", "sharpness.recon_midgrey"),
    ("reconstructions: stroke gradient", "sharpness.recon_gradient"),
    ("prior samples: background intensity", "sharpness.sample_background"),
    ("prior samples: mid-grey share", "sharpness.sample_midgrey"),
    ("prior samples: stroke gradient", "sharpness.sample_gradient"),
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
                     [[label, *interval_cells([_mean_ci(inp, m, key) for m in models])] for label, key in rows
                      if any(_mean_ci(inp, m, key) for m in models)])
    shown = [m for m in inp.models if _mean_ci(inp, m, "sharpness.recon_midgrey")]
    if not shown:
        return []
    blocks: list[Block] = [
        Heading("Continuity and sharpness, measured"),
        Para("The post's words as numbers (`continuity.*`, `grid.*`, `sharpness.*` of `metrics/eval/<model>.json`), "
             "mean ± 95% interval over seeds, on all test images. **Continuity**: fixed pairs of test images (of "
             "different digits and of the same digit, drawn once by `evaluate.continuity_seed`: the same pairs for "
             "every model), each joined by a straight line between its two codes (the AE inside its box, a VAE in "
             "z) and decoded at `evaluate.continuity_steps` points; a jump (one step much larger than the mean "
             "step) is what a fragmented latent looks like. An image *looks real* when its 5th-neighbour distance "
             "to the real test images, in the judge's features, is within the 95% quantile of the real images' "
             "own: a test of \"near the data\", not of class confidence, so an in-between 3/8 can pass. **Own "
             "grid**: a grid over each model's per-axis 1–99% code quantiles, so every grid covers its data; its "
             "empty cells hold no test code (the post's empty areas). **Sharpness** (\"less background colour\", "
             "\"the numbers are clearer\"): the mean intensity on the pixels that are 0 in the input, the share of "
             "mid-grey pixels (0.1–0.9), the mean gradient on the stroke's edge; squared error is a column, not "
             "the test (it rewards blur)."),
        table(MEASURED_ROWS, shown)]
    if any(_reference(inp, key) is not None for _, key in DATA_ROWS):
        blocks += [Para("The test images themselves, by the same statistics (the same for every model; "
                        "`metrics/references.json`):"),
                   Table(["", "test images"], [[label, _reference_cell(inp, key)] for label, key in DATA_ROWS])]
    styled = [m for m in inp.models if _mean_ci(inp, m, "style.slant_z_share")]
    if styled:
        blocks += [Para("**The conditional model's style.** Test codes decoded under every label 0–9: does the "
                        "decoder follow the label, and do slant (the shear of the image moments) and stroke width "
                        "(twice the ink area over its boundary) stay with the code? A share near 1 means the style "
                        "is held by z whatever the label."),
                   table(STYLE_ROWS, styled)]
    return blocks


# The "Which decoder?" tables: (title, the JSON group whose image set the table uses, [(heading, metric key)]).
# One table per image set: numbers of different sets never share a table.
DECODER_TABLES = [
    ("Likelihood (IWAE bound, K = evaluate.iwae_samples)", "grey8bit", [
        ("bits/dim, IWAE (8-bit, dequantised)", "grey8bit.bits_per_dim"),
        ("−log p(x), IWAE (nats)", "grey8bit.nll"), ("KL (bits)", "elbo.kl_bits")]),
    ("Exact likelihood beside its bound, on the same images", "grey8bit_exact", [
        ("bits/dim, exact (quadrature)", "grey8bit_exact.exact_bits_per_dim"),
        ("bits/dim, IWAE", "grey8bit_exact.iwae_bits_per_dim"),
        ("IWAE − exact (nats)", None),
        ("quadrature converged (share)", "grey8bit_exact.exact_converged"),
        ("largest error estimate (nats)", "grey8bit_exact.exact_max_error"),
        ("largest change at tighter settings (nats)", "grey8bit_exact.tight_max_diff")]),
    ("The binarised track: IWAE bound, K = evaluate.binarized_iwae_samples", "binarized", [
        ("binarised NLL, IWAE (nats)", "binarized.iwae_nll")]),
    ("The binarised track: exact beside its bound, on the same images", "binarized_exact", [
        ("binarised NLL, exact (nats)", "binarized_exact.exact_nll"),
        ("binarised NLL, IWAE (nats)", "binarized_exact.iwae_nll"),
        ("quadrature converged (share)", "binarized_exact.exact_converged"),
        ("largest change at tighter settings (nats)", "binarized_exact.tight_max_diff")]),
    ("Sample quality: prior samples against the test images, in the judge's features", "samples", [
        ("FID", "samples.fid"), ("FID, 5 disjoint fifths (mean)", "samples.fid_sets_mean"),
        ("… their s.d.", "samples.fid_sets_std"), ("KID", "samples.kid"), ("precision", "samples.precision"),
        ("density", "samples.density"), ("coverage", "samples.coverage")]),
]


def _gap(inp: Inputs, m: str, group: str) -> Interval | None:
    """IWAE − exact on the same images, per seed, as a mean ± interval over seeds (nats)."""
    values = [flatten(v).get(f"{group}.iwae_nll", math.nan) - flatten(v).get(f"{group}.exact_nll", math.nan)
              for v in inp.evals.get(m, {}).values()]
    values = [v for v in values if math.isfinite(v)]
    return stats.mean_ci(values) if values else None


def image_set_name(inp: Inputs, group: str, models: list[str]) -> str:
    """The one image set behind ``group`` for ``models`` (a ReportError if they were measured on different sets)."""
    ids = {inp.image_sets.get(m, {}).get(group) for m in models} - {None}
    if len(ids) > 1:
        raise ReportError(f"metrics/eval: `{group}` was measured on different image sets {sorted(ids)} for "
                          f"{models}: re-run `dvc repro` so that every model uses the same evaluate params")
    return f"`{ids.pop()}`" if ids else "(not recorded)"


def decoder_blocks(inp: Inputs) -> list[Block]:
    """"Which decoder?": every model with a prior, one table per image set, and the post's two complaints
    answered from the same numbers."""
    generative = [m for m in inp.models if _mean_ci(inp, m, "samples.fid")]
    if not generative:
        return []
    blocks: list[Block] = [
        Heading("Which decoder?"),
        Para("The post's open ends: fixed-variance decoders \"lose their probabilistic interpretation\", and a "
             "distribution bounded on [0, 1] should fit the pixels better. Mean ± 95% interval over seeds; each "
             "table names the one image set all its numbers are measured on (`image_sets` in "
             "`metrics/eval/<model>.json`; a seeded random subset of the test set, not its first images). "
             "**bits/dim**: the discrete 8-bit negative log-likelihood of the test images, (NLL + 784 ln 256) / "
             "(784 ln 2), from each density's NLL of uniformly dequantised pixels (k + u)/256 (Theis et al. 2016); "
             "a uniform model scores exactly 8.00, lower is better; only proper densities on [0, 1] appear (the "
             "Bernoulli on grey pixels is not one). **Exact**: −log p(x) by quadrature over the 2-D latent, not a "
             "bound, with the IWAE bound on the same images: their difference is the bound's looseness. "
             "**binarised NLL**: nats per image on one fixed binarisation of the test set (the `binarize` stage). "
             "**FID, KID, precision, density, coverage**: decoded prior samples against the test images in the "
             "judge's features, beside the same numbers for as many training images (real against real: the floor "
             "a perfect sampler would reach); recall is left out, being ≈ 0 for every 2-D latent (see "
             "`vaelab.measures.sample_quality`).")]
    for title, group, columns in DECODER_TABLES:
        models = [m for m in generative if any(key and _mean_ci(inp, m, key) for _, key in columns)]
        if not models:
            continue
        labels = [model_label(m) for m in models]
        per_row = [[(_gap(inp, m, group) if key is None else _mean_ci(inp, m, key)) for m in models]
                   for _, key in columns]
        cells = [interval_cells(column) for column in per_row]
        if group == "samples":   # the real-against-real floor, in the same features, as one more row
            labels.append("training images (real vs real; measured once)")
            for column, (_, key) in zip(cells, columns):
                column.append(_reference_cell(inp, key.replace("samples.", "samples_reference.")))
        blocks += [Para(f"**{title}.** Image set {image_set_name(inp, group, models)}."),
                   Table(["model", *(h for h, _ in columns)],
                         [[label, *(column[i] for column in cells)] for i, label in enumerate(labels)])]
        blocks += baseline_blocks(inp, group, models)
    bpd = {m: _mean_ci(inp, m, "grey8bit_exact.exact_bits_per_dim") for m in generative}
    bpd = {m: iv for m, iv in bpd.items() if iv is not None}
    fixed = [m for m in bpd if m in inp.fixed_sigma]
    others = {m: iv for m, iv in bpd.items() if m not in inp.fixed_sigma}
    if fixed and others:
        best = min(others, key=lambda m: others[m].mean)
        f = fixed[0]
        blocks.append(Para(
            f"**The fixed variance.** {model_label(f)} (σ = 1) scores {bpd[f].mean:.2f} bits/dim (exact), worse than "
            f"the uniform density's 8.00: with σ = 1 on pixels in [0, 1] its normaliser alone costs ½ log 2π per "
            f"pixel, so it cannot go below 9.33 bits/dim whatever it learns. That is the post's complaint, "
            f"quantified. The best calibrated decoder here, {model_label(best)}, scores {others[best].mean:.2f} "
            "bits/dim: " + ("a density on [0, 1] that is better than uniform." if others[best].mean < 8 else
                            "still no better than uniform at this training length.")))
    blocks += disagreement_blocks(inp, generative)
    if inp.sigma_figure:
        blocks += [Image(inp.sigma_figure, "learned sigma per epoch"),
                   Para("σ of the calibrated Gaussian decoders per epoch (first seed; `sigma` column of "
                        "`plots/history/<model>/seed<k>.csv`).", italic=True)]
    return blocks


BASELINE_NAMES = {  # metrics/baselines.json keys (vaelab.measures.baselines), as the report names them
    "uniform": "uniform over 256 levels", "histogram": "one 256-bin histogram, all positions",
    "histogram_per_pixel": "a 256-bin histogram per position (no latent)",
    "bernoulli_per_pixel": "an independent Bernoulli per position", "bernoulli_mixture": "a mixture of 10 Bernoulli products (EM)"}


def baseline_blocks(inp: Inputs, group: str, models: list[str]) -> list[Block]:
    """The no-latent baselines on the same images as the table of ``group``, and the VAEs ranked against them."""
    # A likelihood table's headline column is its first; the sample-quality table has its own reference row.
    keys = {g: columns[0][1] for _, g, columns in DECODER_TABLES if g != "samples"}
    if group not in keys:
        return []
    ids = {inp.image_sets.get(m, {}).get(group) for m in models} - {None}
    found = inp.baselines.get(next(iter(ids))) if len(ids) == 1 else None
    if not found:
        return []
    bits = "bits_per_dim" in next(iter(found.values()))
    rows = [[BASELINE_NAMES.get(n, n), f"{v['nll']:.1f} ± {v['nll_se']:.1f}",
             *([f"{v['bits_per_dim']:.3f} ± {v['bits_per_dim_se']:.3f}"] if bits else [])] for n, v in found.items()]
    blocks: list[Block] = [Para("Baselines with no latent, fitted on the training images, on the same images "
                                "(`metrics/baselines.json`; ± the standard error over images):"),
                           Table(["baseline", "−log p(x) (nats)", *(["bits/dim"] if bits else [])], rows)]
    key = keys[group]
    best = "histogram_per_pixel" if bits else "bernoulli_mixture"
    if best in found:
        bar = found[best]["bits_per_dim" if bits else "nll"]
        vals = {m: iv.mean for m in models if (iv := _mean_ci(inp, m, key)) is not None}
        beat = [model_label(m) for m, v in vals.items() if v < bar]
        unit = "bits/dim" if bits else "nats"
        blocks.append(Para(f"Against the strongest baseline ({BASELINE_NAMES[best]}, {bar:.3f} {unit}): "
                           + (f"{', '.join(beat)} beat{'s' if len(beat) == 1 else ''} it; " if beat else "no VAE beats it; ")
                           + (f"{', '.join(model_label(m) for m in vals if model_label(m) not in beat)} do not."
                              if len(beat) < len(vals) else "every VAE here does.")))
    return blocks


def disagreement_blocks(inp: Inputs, generative: list[str]) -> list[Block]:
    """Likelihood and sample quality rank the decoders differently (Theis, van den Oord & Bethge 2016): said with
    the numbers, for the models that have both."""
    both = {m: (_mean_ci(inp, m, "grey8bit_exact.exact_bits_per_dim"), _mean_ci(inp, m, "samples.fid"))
            for m in generative}
    both = {m: (b, f) for m, (b, f) in both.items() if b is not None and f is not None}
    if len(both) < 2:
        return []
    by_bpd = sorted(both, key=lambda m: both[m][0].mean)
    by_fid = sorted(both, key=lambda m: both[m][1].mean)
    best_bpd, best_fid = by_bpd[0], by_fid[0]
    text = (f"**Likelihood and sample quality disagree.** By exact bits/dim the order is "
            f"{', '.join(f'{model_label(m)} ({both[m][0].mean:.2f})' for m in by_bpd)}; by FID it is "
            f"{', '.join(f'{model_label(m)} ({both[m][1].mean:.0f})' for m in by_fid)}. ")
    if best_bpd != best_fid:
        text += (f"The best density, {model_label(best_bpd)}, has FID rank {by_fid.index(best_bpd) + 1} of "
                 f"{len(both)}; the best sampler, {model_label(best_fid)}, has bits/dim rank "
                 f"{by_bpd.index(best_fid) + 1}. A good likelihood does not imply good samples, nor the reverse "
                 "(Theis, van den Oord & Bethge 2016): each yardstick answers its own question.")
    else:
        text += f"Here one model, {model_label(best_bpd)}, leads both."
    return [Para(text)]


def inference_blocks(inp: Inputs) -> list[Block]:
    if not inp.inference:
        return []
    ks = sorted({int(k.split("_")[1]) for r in inp.inference.values() for k in r if k.startswith("iwae_")})

    def ms(r: dict, key: str) -> str:
        v = r.get(key)
        return f"{v['mean']:.2f} ± {v['se']:.2f}" if v else MISSING

    def number(r: dict, key: str) -> str:
        return f"{r[key]:.3g}" if key in r else MISSING

    rows = [[model_label(m), ms(r, "log_px"), ms(r, "elbo"), *(ms(r, f"iwae_{k}") for k in ks), ms(r, "gap"),
             number(r, "exact_converged"), number(r, "exact_max_error")] for m, r in inp.inference.items()]
    local = [[model_label(m), ms(r, "local_gap"), ms(r, "approximation_gap"), ms(r, "amortisation_gap")]
             for m, r in inp.inference.items()]
    first = next(iter(inp.inference.values()))
    return [
        Heading("Variational inference, seen"),
        Para("The post derives the ELBO as log p(x) − KL(q(z|x) ‖ p(z|x)). With a 2-D latent both sides can be "
             "computed: log p(x) = log ∫ p(x|z) p(z) dz by quadrature on adaptive grids (`vaelab.measures.inference`, checked "
             "against closed forms and brute-force sums in its tests), so the gap log p(x) − ELBO is exactly the KL "
             "to the true posterior the ELBO leaves out. The importance-weighted bounds L_K (Burda et al. 2015) climb "
             "from the ELBO (K = 1) towards log p(x). Nats per image, mean ± standard error over the images, first "
             "seed; a conditional model is scored given the true label. From `metrics/inference.json`."),
        Para(f"**On image set `{first.get('image_set', first['images'])}`** ({first['images']} test images), with the "
             "quadrature's converged share and largest error estimate (nats)."),
        Table(["model", "log p(x)", "ELBO", *(f"L_{k}" for k in ks), "gap = KL(q ‖ p(z|x))", "converged",
               "largest error"], rows),
        Para(f"**The gap split, on image set `{first.get('local_image_set', first['local_images'])}`** (the first "
             f"{first['local_images']} of those): the gap on these images is the sum of the **approximation gap** "
             "log p(x) − ELBO(q*), where q* is the best Gaussian for each image alone (Adam steps on its own ELBO), "
             "and the **amortisation gap** ELBO(q*) − ELBO(q), what sharing one encoder across all images costs "
             "(Cremer, Li & Duvenaud 2018)."),
        Table(["model", "gap on these images", "approximation gap", "amortisation gap"], local),
        *(Image(f"figures/inference/{m}.png", f"{model_label(m)} posteriors") for m in inp.inference),
        Para("Filled: the true posterior p(z|x) of four test digits; lines: the encoder's Gaussian q(z|x). Where the "
             "lines miss the filled region, the ELBO pays the KL above.", italic=True),
    ]


def quadrant_blocks(inp: Inputs) -> list[Block]:
    """Sohn et al.'s structured-output task: −log p(missing | given) of the baseline network and the CVAE beside
    Pyro's reproduction (metrics/quadrants.json, figures/quadrants/)."""
    q = inp.quadrants
    settings = sorted(k for k in q if k.startswith("given_"))
    if not settings:
        return []
    anchor = q.get("anchor_pyro", {})

    def pm(r: dict, key: str) -> str:
        return f"{r[key]:.2f} ± {r[key + '_se']:.2f}" if key in r else MISSING

    rows = [[k.split("_")[1], pm(q[k], "baseline_nll"), pm(q[k], "cvae_nll"), pm(q[k], "cvae_neg_elbo"),
             f"{anchor[k]['baseline_nll']} / {anchor[k]['cvae_nll']}" if k in anchor else MISSING] for k in settings]
    return [Heading("Structured output: completing a digit"),
            Para("The post's promised follow-up cites Sohn, Lee & Yan (2015), whose task is this: given one, two or "
                 "three quadrants of a test digit, predict the rest. A deterministic baseline network predicts one "
                 "completion, the average of all that fit; a CVAE (prior network p(z | given) on top of the baseline, "
                 "recognition network q(z | given, missing), generation network p(missing | given, z)) predicts a "
                 "distribution over them. Both are scored by −log p(missing pixels | given pixels) in nats per image "
                 "with a Bernoulli on grey pixels, as Pyro's public reproduction (MLP 500-500; numbers from its "
                 f"`examples/cvae`), whose baseline / CVAE numbers are in the last column. The CVAE's value is "
                 f"estimated by importance sampling with S = {q.get('S')} samples from q(z | given, missing) on the "
                 f"first {q.get('images')} test images (± the standard error over images); its negative ELBO is shown "
                 "too, since Pyro's CVAE number is a sampled negative ELBO. One seed "
                 f"({q.get('seed')})."),
            Table(["given quadrants", "baseline", "CVAE, importance-sampled", "CVAE, −ELBO",
                   "Pyro: baseline / CVAE"], rows),
            *(Image(f"figures/quadrants/given{k.split('_')[1]}.png", f"quadrant completion, {k}") for k in settings),
            Para("Columns: the input (missing pixels grey), the truth, the baseline's prediction, CVAE samples.",
                 italic=True)]


def tuning_blocks(inp: Inputs) -> list[Block]:
    """"The VAE needed less tuning": the spread across seeds at the default setting (here), and the lr x batch
    sweep (reports/tuning.md, written from DVC's queue by stages/tuning.py)."""
    key = "reconstruction.mse_per_image"
    per_model = {m: [flatten(v)[key] for v in inp.evals.get(m, {}).values() if key in flatten(v)] for m in inp.models}
    per_model = {m: values for m, values in per_model.items() if values}
    if not per_model:
        return []
    errors = interval_cells([stats.mean_ci(values) for values in per_model.values()])
    spreads = number_cells([claims.seed_spread(values) for values in per_model.values()])
    rows = [[model_label(m), e, cv] for m, e, cv in zip(per_model, errors, spreads)]
    return [Heading("Did the VAE need less tuning?"),
            Para("Two pieces of evidence. Here: how much one setting's result moves from seed to seed (coefficient of "
                 "variation of the test squared error per image, sample standard deviation over the mean; lower is "
                 "steadier). The other is an lr × batch-size sweep through DVC's queue (README, \"Sweeps\"), written to "
                 "`reports/tuning.md` by `stages/tuning.py`: for each model the fraction of settings within a margin of "
                 f"its best. Rule: {claims.TUNING_RULE}"),
            Table(["model", "test squared error / image", "spread across seeds (CV)"], rows)]


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


def seeds_sentence(seeds: dict[str, list[int]]) -> str:
    """'Each model was trained with 3 seeds (42, 43, 44); ae and vae_bce with 10 (42-51).' from model -> seeds."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for m, s in seeds.items():
        groups.setdefault(tuple(s), []).append(m)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))   # the most common set first: "each model"

    def listed(s: tuple[int, ...]) -> str:
        n = len(s)
        run = n > 2 and list(s) == list(range(s[0], s[0] + n))
        return f"{n} seed{'s' if n > 1 else ''} ({f'{s[0]}–{s[-1]}' if run else ', '.join(map(str, s))})"

    (common, _), rest = ordered[0], ordered[1:]
    text = f"Each model was trained with {listed(common)}"
    for s, ms in rest:
        text += f"; {', '.join(ms)} with {listed(s)}"
    return text + "."


def report_blocks(inp: Inputs) -> list[Block]:
    blocks: list[Block] = [
        Para("Written by the `report` stage of `dvc repro`; every picture and number below is an output of the "
             f"pipeline. {seeds_sentence(inp.seeds)} "
             "Pictures show the first seed, numbers are the mean ± the half-width of a 95% Student-t interval over "
             "seeds (per-seed values: `metrics/train/<model>.json`, `metrics/eval/<model>.json`), every number of "
             f"one metric to the same decimal places. Likelihoods are in nats per image. {MISSING} marks a number or "
             "figure that does not apply to a model (an AE has no KL term and no prior to sample) or that its "
             "evaluation does not measure."),
        Contents(),
        *claims_blocks(inp.verdicts, inp.forks, inp.models),
        Heading("The data"), Image("study/data.png", "MNIST training images"),
        *figure_blocks(inp),
        *post_ae_blocks(inp),
        *measured_blocks(inp),
        *decoder_blocks(inp),
        *inference_blocks(inp),
        *quadrant_blocks(inp),
        *tuning_blocks(inp),
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
