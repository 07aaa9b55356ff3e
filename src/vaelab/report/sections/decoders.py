"""Section "Which decoder?": likelihood, exact and sample-quality tables on named image sets, the no-latent
baselines on the same images, and where the yardsticks disagree."""

from __future__ import annotations

import math

from vaelab.core import stats
from vaelab.core.config import flatten
from vaelab.core.errors import ReportError
from vaelab.core.stats import Interval
from vaelab.report.render import Block, Heading, Image, Para, Table
from vaelab.report.sections.cells import Inputs, interval_cells, mean_ci_of, reference_cell
from vaelab.viz.model_figures import model_label

# The "Which decoder?" tables: (title, the JSON group whose image set the table uses, [(heading, metric key)]).
# One table per image set: numbers of different sets never share a table. A title's {key} prints that `evaluate`
# param's value.
DECODER_TABLES = [
    ("Likelihood of the dequantised test images (IWAE bound, K = {iwae_samples})", "grey8bit", [
        ("bits/dim, IWAE (8-bit, dequantised)", "grey8bit.bits_per_dim"),
        ("−log p(x), IWAE (nats)", "grey8bit.nll"), ("KL (bits)", "elbo.kl_bits")]),
    ("Exact likelihood of the dequantised test images beside its bound (K = {iwae_samples}), on the same images",
     "grey8bit_exact", [
        ("bits/dim, exact (quadrature)", "grey8bit_exact.exact_bits_per_dim"),
        ("bits/dim, IWAE", "grey8bit_exact.iwae_bits_per_dim"),
        ("IWAE − exact (nats)", None),
        ("quadrature converged (share)", "grey8bit_exact.exact_converged"),
        ("largest error estimate (nats)", "grey8bit_exact.exact_max_error"),
        ("largest change at tighter settings (nats)", "grey8bit_exact.tight_max_diff")]),
    ("The binarised track: IWAE bound, K = {binarized_iwae_samples}", "binarized", [
        ("binarised NLL, IWAE (nats)", "binarized.iwae_nll")]),
    ("The binarised track: exact beside its bound (K = {iwae_samples}), on the same images", "binarized_exact", [
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
    generative = [m for m in inp.models if mean_ci_of(inp, m, "samples.fid")]
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
             "a perfect sampler would reach); KID is the unbiased squared MMD with the cubic polynomial kernel in "
             "those features (no unit; 0 for the same distribution); recall is left out, being ≈ 0 for every 2-D latent (see "
             "`vaelab.measures.sample_quality`).")]
    for title, group, columns in DECODER_TABLES:
        models = [m for m in generative if any(key and mean_ci_of(inp, m, key) for _, key in columns)]
        if not models:
            continue
        labels = [model_label(m) for m in models]
        per_row = [[(_gap(inp, m, group) if key is None else mean_ci_of(inp, m, key)) for m in models]
                   for _, key in columns]
        cells = [interval_cells(column) for column in per_row]
        if group == "samples":   # the real-against-real floor, in the same features, as one more row
            labels.append("training images (real vs real; measured once)")
            for column, (_, key) in zip(cells, columns):
                column.append(reference_cell(inp, key.replace("samples.", "samples_reference.")))
        blocks += [Para(f"**{title.format(**inp.settings)}.** Image set {image_set_name(inp, group, models)}."),
                   Table(["model", *(h for h, _ in columns)],
                         [[label, *(column[i] for column in cells)] for i, label in enumerate(labels)])]
        blocks += baseline_blocks(inp, group, models)
    bpd = {m: mean_ci_of(inp, m, "grey8bit_exact.exact_bits_per_dim") for m in generative}
    bpd = {m: iv for m, iv in bpd.items() if iv is not None}
    fixed = [m for m in bpd if m in inp.fixed_sigma]
    others = {m: iv for m, iv in bpd.items() if m not in inp.fixed_sigma}
    if fixed and others:
        best = min(others, key=lambda m: others[m].mean)
        f = fixed[0]
        bar = _histogram_bar(inp, "grey8bit_exact", list(bpd))
        blocks.append(Para(
            f"**The fixed variance.** {model_label(f)} (σ = 1) scores {bpd[f].mean:.2f} bits/dim (exact), worse than "
            f"the uniform density's 8.00: with σ = 1 on pixels in [0, 1] its normaliser alone costs ½ log 2π per "
            f"pixel, so it cannot go below 9.33 bits/dim whatever it learns. That is the post's complaint, "
            f"quantified. The best calibrated decoder here, {model_label(best)}, scores {others[best].mean:.2f} "
            "bits/dim: " + ("a density on [0, 1] that is better than uniform" if others[best].mean < 8 else
                            "still no better than uniform at this training length")
            + ("." if bar is None else
               f"; {'and' if others[best].mean < bar else 'but not'} better than a histogram per pixel position with "
               f"no latent at all ({bar:.2f} bits/dim on the same images).")))
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
    found = _baselines_on(inp, group, models)
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
        vals = {m: iv.mean for m in models if (iv := mean_ci_of(inp, m, key)) is not None}
        beat = [model_label(m) for m, v in vals.items() if v < bar]
        unit = "bits/dim" if bits else "nats"
        blocks.append(Para(f"Against the strongest baseline ({BASELINE_NAMES[best]}, {bar:.3f} {unit}): "
                           + (f"{', '.join(beat)} beat{'s' if len(beat) == 1 else ''} it; " if beat else "no VAE beats it; ")
                           + (f"{', '.join(model_label(m) for m in vals if model_label(m) not in beat)} do not."
                              if len(beat) < len(vals) else "every VAE here does.")))
    return blocks



def _baselines_on(inp: Inputs, group: str, models: list[str]) -> dict:
    """metrics/baselines.json's baselines on the one image set of ``group`` for ``models`` ({} if none or several)."""
    ids = {inp.image_sets.get(m, {}).get(group) for m in models} - {None}
    return inp.baselines.get(next(iter(ids)), {}) if len(ids) == 1 else {}



def _histogram_bar(inp: Inputs, group: str, models: list[str]) -> float | None:
    """The per-position histogram's bits/dim on the image set of ``group``, if measured."""
    return _baselines_on(inp, group, models).get("histogram_per_pixel", {}).get("bits_per_dim")



def _by_mean(values: dict[str, Interval]) -> tuple[list[str], list[bool]]:
    """The models by mean, and for each two neighbours whether their intervals do not overlap."""
    names = sorted(values, key=lambda m: values[m].mean)
    return names, [values[a].high < values[b].low for a, b in zip(names, names[1:])]



def _all_apart(values: dict[str, Interval]) -> bool:
    return all(_by_mean(values)[1])



def ordered(values: dict[str, Interval], digits: int) -> str:
    """'A (2.33) < B (2.83) ≈ C (2.85)': models by mean, '<' only where the neighbours' intervals do not overlap."""
    names, apart = _by_mean(values)
    return f"{model_label(names[0])} ({values[names[0]].mean:.{digits}f})" + "".join(
        f" {'<' if sep else '≈'} {model_label(b)} ({values[b].mean:.{digits}f})" for sep, b in zip(apart, names[1:]))



def disagreement_blocks(inp: Inputs, generative: list[str]) -> list[Block]:
    """Likelihood and sample quality rank the decoders differently (Theis, van den Oord & Bethge 2016): said with
    the numbers, for the models that have both."""
    both = {m: (mean_ci_of(inp, m, "grey8bit_exact.exact_bits_per_dim"), mean_ci_of(inp, m, "samples.fid"))
            for m in generative}
    both = {m: (b, f) for m, (b, f) in both.items() if b is not None and f is not None}
    if len(both) < 2:
        return []
    by_bpd = sorted(both, key=lambda m: both[m][0].mean)
    by_fid = sorted(both, key=lambda m: both[m][1].mean)
    best_bpd, best_fid = by_bpd[0], by_fid[0]
    text = (f"**Likelihood and sample quality disagree.** By exact bits/dim (the exact set) the order is "
            f"{ordered({m: b for m, (b, _) in both.items()}, 2)}; by FID (all test images) it is "
            f"{ordered({m: f for m, (_, f) in both.items()}, 0)} ('<': the 95% intervals over seeds do not overlap; "
            "'≈': they do, and the order between those two is not established). ")
    separate = all(_all_apart({m: pair[i] for m, pair in both.items()}) for i in (0, 1))
    if best_bpd != best_fid and separate:
        text += (f"The best density, {model_label(best_bpd)}, has FID rank {by_fid.index(best_bpd) + 1} of "
                 f"{len(both)}; the best sampler, {model_label(best_fid)}, has bits/dim rank "
                 f"{by_bpd.index(best_fid) + 1}. A good likelihood does not imply good samples, nor the reverse "
                 "(Theis, van den Oord & Bethge 2016): each yardstick answers its own question.")
    elif best_bpd == best_fid:
        text += f"Here one model, {model_label(best_bpd)}, leads both."
    return [Para(text)]
