"""What the evaluate stage measures for one trained model: the metrics of :mod:`vaelab.measures.metrics` composed
by asking the model what it is (has a prior? a 2-D latent? conditional?), never by testing its kind.

JSON layout of one seed (nats per image unless said otherwise; keys a model cannot have are left out)::

    reconstruction: mse_per_image, mse_per_pixel     # decode(posterior mean), squared error
    elbo:           neg_elbo, recon, kl, kl_bits      # models with a prior: −ELBO = recon + KL
    iwae:           nll                               # models with a prior: −log p(x) bound, K samples, on the
                                                      #   first `likelihood_images` test images in the model's
                                                      #   own data space (grey, dequantised or binarised)
                    nll_given_y, nll_marginal         # conditional models instead of nll (see below)
    grey8bit:       nll, bits_per_dim                 # densities on [0, 1] (not the Bernoulli): the same bound on
                                                      #   the dequantised test images; bits/dim of the 8-bit data
                    exact_nll, exact_bits_per_dim     #   2-d latents: −log p(x) by quadrature, first
                                                      #   `quadrature_images` images (not a bound)
    binarized:      iwae_nll, iwae_se, exact_nll      # Bernoulli models trained on binarised pixels: the fixed
                                                      #   binarised test set, K = binarized_iwae_samples
    samples:        fid, fid_sets_mean, fid_sets_std, kid, kid_std, precision, density, coverage
                                                      # models with a prior: `sample_images` decoded prior
                                                      #   samples vs the test images, in the judge's features
    samples_reference: the same numbers for as many training images as samples (real vs real)
    latent:         knn_accuracy, silhouette, saturated_fraction (bounded latents)
    grid:           confident_fraction                # 2-d latents only, unconditional: the share of the grid of
                                                      #   models.latent_grid the judge calls a digit with confidence
                    own_real_share, empty_share,      #   the grid over the model's own 1–99% code quantiles: the
                    empty_real_share, empty_unreal_share  # share of real-looking tiles, of cells with no test code
    continuity:     jump_ratio, jump_ratio_median,    # unconditional models (vaelab.measures.continuity): straight paths
                    path_ratio_median, real_share,    #   between the codes of fixed test pairs, decoded; _different
                    jump_ratio_different, ...         #   and _same split the pairs by digit
    sharpness:      recon_*, sample_*, data_*         # background, background_own, midgrey, gradient of the
                                                      #   reconstructions, prior samples and test images (vaelab.measures.sharpness)
    conditional:    accuracy, bayes_accuracy          # conditional models with a prior
    style:          label_accuracy, slant_z_share,    # conditional models with a prior (vaelab.measures.style): codes
                    width_z_share                     #   decoded under every label

A conditional model p(x|y) is scored given the true label: its `elbo.*` and `iwae.nll_given_y` bound
−log p(x|y) on the whole test set. Only `iwae.nll_marginal`, −log p(x) with p(x) = Σ_y p(y) p(x|y) and
p(y) = 1/10, is comparable with an unconditional model's `iwae.nll`; it needs p(x|y) for all ten labels,
so it costs 10x the bound of one label; it is measured on the same likelihood set as every other bound. `conditional.accuracy`: the share of
images decoded from z ~ N(0, I) with a requested label (CONDITIONAL_SAMPLES per label) that the judge
classifies as that label. `conditional.bayes_accuracy`: on the same subset, the share of images whose most
likely label argmax_y p(x|y) is their own (the generative model used as a classifier).

Settings (K, k of the kNN, grid size, threshold) are params, not metrics: see params.yaml `evaluate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaelab.core.config import EvaluateConfig
from vaelab.data import image_sets
from vaelab.data.image_sets import ImageSets, image_sets_for
from vaelab.data.mnist import INPUT_DIM, NUM_CLASSES, Split, batches
from vaelab.data.spaces import DataSpace, dequantize
from vaelab.measures import continuity, importance, inference, metrics, sharpness, style
from vaelab.measures import judge as judges
from vaelab.measures.sample_quality import sample_quality
from vaelab.models.base import LatentModel
from vaelab.models.likelihoods import bits_per_dim

SATURATION = 0.01  # a code coordinate this close to its box's edge counts as saturated
# Conditional models: images drawn per label for `conditional.accuracy` (10 x 1000 decodes, seconds), and
# test images for the label marginal (10 labels x K samples each: the cost of 10x as many images).
CONDITIONAL_SAMPLES = 1000
SE_SUFFIX = "_se"   # beside a mean over images: its image-level standard error (vaelab.studies.claims reads it)


@torch.no_grad()
def conditional_accuracy(model: LatentModel, judge: torch.nn.Module, per_label: int,
                         generator: torch.Generator) -> float:
    """Share of mean images decoded from z ~ N(0, I) with label k (``per_label`` for each k = 0..9) that the
    judge's most probable class calls k. ``generator`` lives on the model's device."""
    device = model.device
    labels = torch.arange(NUM_CLASSES, device=device).repeat_interleave(per_label)
    z = torch.randn(len(labels), model.cfg.latent_dim, generator=generator, device=device)
    drawn = torch.cat([model.mean_image(z[i], labels[i]) for i in batches(len(z), metrics.DECODER_ROWS)])
    return (judges.predict_proba(judge, drawn).argmax(1) == labels.cpu()).to(torch.float32).mean().item()


@torch.no_grad()
def label_marginal_nll(model: LatentModel, x: torch.Tensor, k: int,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(−log p(x) [N], −log p(x|y) [N, 10] for every label y) of a conditional model, in nats.

    Each −log p(x|y) is the IWAE bound with ``k`` samples of q(z|x, y) (Burda et al. 2015, eq. 8), and
    −log p(x) = −logsumexp_y [log p(y) + log p(x|y)] with p(y) = 1/10. Each exp(IWAE estimate) is an unbiased
    estimate of p(x|y), so their p(y)-weighted sum is one of p(x) and the marginal is again a stochastic
    upper bound on −log p(x) (importance sampling with the proposal Σ_y p(y) q(z|x, y)). For the same draws,
    −log p(x) ≤ −log p(x|y) + ln 10 for every y, with equality when one label explains x alone.
    """
    per_label = torch.stack([
        metrics.likelihood_bounds(model, x, torch.full((len(x),), c, dtype=torch.int64), k, generator)["iwae_nll"]
        for c in range(NUM_CLASSES)], dim=1)
    return -(torch.logsumexp(-per_label, dim=1) - math.log(NUM_CLASSES)), per_label


@dataclass(frozen=True)
class TestSets:
    """The test images in every form the yardsticks need (built once per evaluate stage)."""

    grey: Split                     # the MNIST test split, pixels k/255
    binarized: torch.Tensor         # the fixed binarisation of the `binarize` stage
    dequantized: torch.Tensor       # one seeded dequantisation (k + u)/256
    real_features: torch.Tensor     # the judge's features of the grey test images (the reference subset)

    def own(self, space: DataSpace) -> torch.Tensor:
        """The test images in a model's own data space (the space's fixed test-time images)."""
        return space.test_images(self)


def seeded_dequantization(test: Split, seed: int) -> torch.Tensor:
    """The one seeded dequantisation of the test images that scores every dequantised model."""
    return dequantize(test.images, torch.Generator().manual_seed(seed))


def test_images(space: DataSpace, test: Split, binarized: torch.Tensor, seed: int) -> torch.Tensor:
    """The test images in data space ``space``: grey, the seeded dequantisation, or the fixed binarisation."""
    return space.test_images(TestSets(test, binarized, seeded_dequantization(test, seed), torch.empty(0)))


def test_sets(test: Split, binarized: torch.Tensor, judge: torch.nn.Module, seed: int,
              reference_images: int | None = None) -> TestSets:
    """The test images in every form; sample quality compares against the first ``reference_images`` of them
    (the evaluation passes its ``sample_images``: N samples against N test images, FID's usual protocol)."""
    real = judges.features(judge, _subset(test.images, reference_images))
    return TestSets(test, binarized, seeded_dequantization(test, seed), real)


def _subset(x: torch.Tensor, n: int | None) -> torch.Tensor:
    return x if n is None else x[:n]


@torch.no_grad()
def prior_samples(model: LatentModel, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` mean images decoded from z ~ N(0, I) (a conditional model: labels 0–9 in turn), on the CPU."""
    z = torch.randn(n, model.cfg.latent_dim, generator=generator, device=model.device)
    y = torch.arange(n, device=model.device) % NUM_CLASSES if model.conditional else None
    return torch.cat([model.mean_image(z[i], None if y is None else y[i]).cpu()
                      for i in batches(n, metrics.DECODER_ROWS)])


# Tighter quadrature settings than the default (vaelab.measures.inference.quadrature: coarse 256, radius 5, tol 0.05).
TIGHT = {"coarse": 384, "radius": 7.0, "tol": 0.02}


def _mean_and_se(name: str, values: torch.Tensor) -> dict[str, float]:
    """``{name: mean, name_se: image-level standard error}`` of per-image values."""
    mean, se = importance.mean_se(values)
    return {name: mean, f"{name}{SE_SUFFIX}": se}


@torch.no_grad()
def exact_group(model: LatentModel, x: torch.Tensor, cfg: EvaluateConfig, seed: int, in_bits: bool) -> dict:
    """Exact −log p(x) by quadrature over the 2-D latent (:func:`vaelab.measures.inference.quadrature`, not a bound) and
    the IWAE bound on the **same** images, each with its image-level standard error; the quadrature's converged
    share and largest error estimate; and the largest difference from a re-run at tighter settings on the first
    ``cfg.tight_images`` of them. ``in_bits``: also bits/dim of the 8-bit data (dequantised densities)."""
    lik = model.likelihood
    q = inference.quadrature(model.decode, lik.log_prob_pairs, lik.log_prob, x.to(model.device))
    exact = -q.log_px.cpu()
    gen = torch.Generator(model.device).manual_seed(seed)
    iwae = metrics.likelihood_bounds(model, x, None, cfg.iwae_samples, gen)["iwae_nll"]
    out = {**_mean_and_se("exact_nll", exact), **_mean_and_se("iwae_nll", iwae),
           "exact_converged": q.converged.to(torch.float32).mean().item(),
           "exact_max_error": q.error.max().item()}
    if in_bits:
        out.update(_mean_and_se("exact_bits_per_dim", bits_per_dim(exact)))
        out.update(_mean_and_se("iwae_bits_per_dim", bits_per_dim(iwae)))
    if cfg.tight_images > 0:
        xt = x[:cfg.tight_images].to(model.device)
        tight = inference.quadrature(model.decode, lik.log_prob_pairs, lik.log_prob, xt, **TIGHT)
        out["tight_max_diff"] = (tight.log_px.cpu() + exact[:len(xt)]).abs().max().item()
    return out


@torch.no_grad()
def decoded(model: LatentModel, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Mean images of codes ``z`` (labels ``y`` for a conditional model), decoded in batches, on the CPU."""
    return torch.cat([model.mean_image(z[i].to(model.device), None if y is None else y[i].to(model.device)).cpu()
                      for i in batches(len(z), metrics.DECODER_ROWS)]) if len(z) else torch.empty(0, INPUT_DIM)


@torch.no_grad()
def latent_structure(model: LatentModel, judge: torch.nn.Module, tests: TestSets, z_test: torch.Tensor,
                     cfg: EvaluateConfig) -> dict:
    """Continuity (:mod:`vaelab.measures.continuity`) of an unconditional model: the fixed pairs' paths, and for a 2-D
    latent its own grid's realness and empty areas (keys added to ``grid``)."""
    realness = continuity.Realness.fit(tests.real_features, cfg.realness_k, cfg.realness_quantile)
    decode = lambda z: decoded(model, z)                       # noqa: E731
    features = lambda images: judges.features(judge, images)   # noqa: E731
    a, b, same = continuity.fixed_pairs(tests.grey.labels, cfg.continuity_pairs, cfg.continuity_seed)
    out = {"continuity": continuity.path_metrics(decode, features, realness, z_test[a], z_test[b], same,
                                                 cfg.continuity_steps)}
    if model.cfg.latent_dim == 2:
        out["grid"] = continuity.grid_metrics(decode, features, realness, z_test, cfg.grid_size)
    return out


@torch.no_grad()
def code_style(model: LatentModel, judge: torch.nn.Module, z_test: torch.Tensor, cfg: EvaluateConfig) -> dict:
    """The style group (:mod:`vaelab.measures.style`) of a conditional model, on a seeded subset of its test codes."""
    pick = image_sets.subset(len(z_test), cfg.style_images, cfg.continuity_seed)
    classify = lambda images: judges.predict_proba(judge, images).argmax(1)   # noqa: E731
    return style.style_group(lambda z, y: decoded(model, z, y), classify, z_test[pick])


@torch.no_grad()
def yardsticks(model: LatentModel, judge: torch.nn.Module, tests: TestSets, cfg: EvaluateConfig, seed: int,
               fake: torch.Tensor, sets: ImageSets) -> dict:
    """The numbers that compare models across decoders: 8-bit bits/dim, the binarised track, sample quality.
    Each group is measured on one image set (``sets.ids``)."""
    out: dict = {}
    unconditional = not model.conditional
    exact = unconditional and model.cfg.latent_dim == 2 and cfg.quadrature_images > 0
    if unconditional and model.likelihood.density:
        gen = torch.Generator(model.device).manual_seed(seed)
        nll = metrics.likelihood_bounds(model, tests.dequantized[sets.likelihood], None, cfg.iwae_samples, gen)["iwae_nll"]
        out["grey8bit"] = {**_mean_and_se("nll", nll), **_mean_and_se("bits_per_dim", bits_per_dim(nll))}
        if exact:
            out["grey8bit_exact"] = exact_group(model, tests.dequantized[sets.exact], cfg, seed, in_bits=True)
    if unconditional and model.space.binary:
        gen = torch.Generator(model.device).manual_seed(seed)
        nll = metrics.likelihood_bounds(model, tests.binarized[sets.binarized], None, cfg.binarized_iwae_samples,
                                        gen)["iwae_nll"]
        out["binarized"] = _mean_and_se("iwae_nll", nll)
        if exact:
            out["binarized_exact"] = exact_group(model, tests.binarized[sets.binarized_exact], cfg, seed, in_bits=False)
    out["samples"] = sample_quality(tests.real_features, judges.features(judge, fake), torch.Generator().manual_seed(seed))
    return out


@torch.no_grad()
def score(model: LatentModel, judge: torch.nn.Module, train: Split, tests: TestSets, cfg: EvaluateConfig,
          seed: int) -> dict:
    """Every metric of one model on the test split (kNN fitted on the training split's codes)."""
    test = tests.grey
    sets = image_sets_for(cfg, len(test.images), len(tests.binarized), len(tests.real_features))
    y_train, y_test = (train.labels, test.labels) if model.conditional else (None, None)
    z_train, z_test = metrics.codes(model, train.images, y_train), metrics.codes(model, test.images, y_test)
    mse = metrics.reconstruction_error(model, test.images, z_test, y_test).mean().item()
    out: dict = {"reconstruction": {"mse_per_image": mse, "mse_per_pixel": mse / INPUT_DIM}}
    if model.has_prior:
        gen = torch.Generator(model.device).manual_seed(seed)
        pick = sets.likelihood
        own = tests.own(model.space)[pick]
        per_image = metrics.likelihood_bounds(model, own, y_test[pick] if y_test is not None else None,
                                              cfg.iwae_samples, gen)
        out["elbo"] = {**_mean_and_se("neg_elbo", per_image["neg_elbo"]), "recon": per_image["recon"].mean().item(),
                       "kl": per_image["kl"].mean().item(), "kl_bits": per_image["kl"].mean().item() / math.log(2)}
        if not model.conditional:
            out["iwae"] = _mean_and_se("nll", per_image["iwae_nll"])
        else:
            marginal, per_label = label_marginal_nll(model, own, cfg.iwae_samples, gen)
            out["iwae"] = {**_mean_and_se("nll_given_y", per_image["iwae_nll"]),
                           **_mean_and_se("nll_marginal", marginal)}
            conditional = {
                "accuracy": conditional_accuracy(model, judge, CONDITIONAL_SAMPLES,
                                                 torch.Generator(model.device).manual_seed(seed)),
                "bayes_accuracy": (per_label.argmin(1) == test.labels[pick]).to(torch.float32).mean().item()}
    subset = torch.arange(len(z_test))
    if cfg.silhouette_size is not None and cfg.silhouette_size < len(z_test):
        subset = torch.randperm(len(z_test), generator=torch.Generator().manual_seed(seed))[:cfg.silhouette_size]
    out["latent"] = {
        "knn_accuracy": metrics.knn_accuracy(z_train, train.labels, z_test, test.labels, cfg.knn_k),
        "silhouette": metrics.silhouette(z_test[subset], test.labels[subset]),
    }
    if model.latent_box is not None:
        # A bounded code that sits on its box's edges has saturated (the post's AE collapses that way).
        low, high = model.latent_box
        edge = ((z_test - low < SATURATION) | (high - z_test < SATURATION)).any(1)
        out["latent"]["saturated_fraction"] = edge.to(torch.float32).mean().item()
    if model.cfg.latent_dim == 2 and not model.conditional:
        tiles = model.mean_image(model.latent_grid(cfg.grid_size).to(model.device))
        probs = judges.predict_proba(judge, tiles)
        out["grid"] = {"confident_fraction": metrics.confident_fraction(probs, cfg.threshold)}
    if not model.conditional:
        structure = latent_structure(model, judge, tests, z_test, cfg)
        out["continuity"] = structure["continuity"]
        out.setdefault("grid", {}).update(structure.get("grid", {}))
    if model.conditional and model.has_prior:
        out["conditional"] = conditional
        out["style"] = code_style(model, judge, z_test, cfg)
    # The same draws as FID's: the generator is seeded as before.
    fake = prior_samples(model, cfg.sample_images, torch.Generator(model.device).manual_seed(seed)) if model.has_prior else None
    out["sharpness"] = sharpness.sharpness_group(decoded(model, z_test, y_test), test.images, fake)
    if model.has_prior:
        out.update(yardsticks(model, judge, tests, cfg, seed, fake, sets))
        # Real against real: as many training images as samples, in the same features (FID's floor here).
        real_train = judges.features(judge, train.images[:len(fake)])
        out["samples_reference"] = sample_quality(tests.real_features, real_train, torch.Generator().manual_seed(seed))
    return out


def mean_over_seeds(per_seed: list[dict]) -> dict:
    """The mean of every (nested) metric over seeds, in the same layout."""
    first = per_seed[0]
    return {k: mean_over_seeds([m[k] for m in per_seed]) if isinstance(v, dict) else sum(m[k] for m in per_seed) / len(per_seed)
            for k, v in first.items()}
