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
    latent:         knn_accuracy, silhouette,         # kNN digit vote and silhouette by digit (scikit-learn), and
                    trustworthiness,                  #   whether latent neighbours are image neighbours (`trust_images`)
                    saturated_fraction                # bounded latents
    grid:           confident_fraction                # 2-d latents only, unconditional: the share of the grid of
                                                      #   models.latent_grid the judge calls a digit with confidence
                    own_real_share, empty_share,      #   the grid over the model's own 1–99% code quantiles: the
                    empty_real_share, empty_unreal_share  # share of real-looking tiles, of cells with no test code
                    empty_floor, empty_excess(_g10..)  # (and the share a Gaussian cloud of the codes' shape leaves, and the rest)
    continuity:     jump_ratio, jump_ratio_median,    # unconditional models (vaelab.measures.continuity): straight paths
                    path_ratio_median, real_share,    #   between the codes of fixed test pairs, decoded; _different
                    jump_ratio_different, ...         #   and _same split the pairs by digit; real_share_q90.. at other
                    break_share(_p25, _p75)           #   realness quantiles; breaks that persist when decoded finely
                                                      #   (jump ratios are null for a collapsed model)
    sharpness:      recon_*, sample_*, grid_*         # background, background_own(_m1, _m3), midgrey, gradient of the
                                                      #   reconstructions, prior samples, the decoded latent grid
                                                      #   and test images (vaelab.measures.sharpness)
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

import functools
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from vaelab.core.config import EvaluateConfig
from vaelab.core.errors import ConfigError
from vaelab.data import image_sets, spaces
from vaelab.data.image_sets import image_sets_for
from vaelab.data.mnist import INPUT_DIM, NUM_CLASSES, Split, batches
from vaelab.data.spaces import DataSpace, dequantize
from vaelab.measures import continuity, importance, inference, metrics, sharpness, style
from vaelab.measures import judge as judges
from vaelab.measures.capabilities import ANY, Needs
from vaelab.measures.sample_quality import sample_quality
from vaelab.models.base import LatentModel
from vaelab.models.likelihoods import bits_per_dim
from vaelab.measures.references import References

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

    def own(self, space: DataSpace) -> torch.Tensor:
        """The test images in a model's own data space (the space's fixed test-time images)."""
        return space.test_images(self)


def seeded_dequantization(test: Split, seed: int) -> torch.Tensor:
    """The one seeded dequantisation of the test images that scores every dequantised model."""
    return dequantize(test.images, torch.Generator().manual_seed(seed))


def test_images(space: DataSpace, test: Split, binarized: torch.Tensor, seed: int) -> torch.Tensor:
    """The test images in data space ``space``: grey, the seeded dequantisation, or the fixed binarisation."""
    return space.test_images(test_sets(test, binarized, seed))


def test_sets(test: Split, binarized: torch.Tensor, seed: int) -> TestSets:
    """The test images in every form."""
    return TestSets(test, binarized, seeded_dequantization(test, seed))


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


class Context:
    """What the measures of one model share: its codes, its test images in every form, the evaluation's image sets
    and the draws more than one measure reads (each computed once, on first use, from its own seeded generator)."""

    def __init__(self, model: LatentModel, judge: torch.nn.Module, train: Split, tests: TestSets, refs: References,
                 cfg: EvaluateConfig, seed: int) -> None:
        self.model, self.judge, self.train, self.tests, self.cfg, self.seed = model, judge, train, tests, cfg, seed
        self.refs, self.realness = refs, refs.realness
        self.test = tests.grey
        self.sets = image_sets_for(cfg, len(self.test.images), len(tests.binarized), len(refs.samples.features))
        self.y_train, self.y_test = model.condition(train.labels), model.condition(self.test.labels)
        self.z_train = metrics.codes(model, train.images, self.y_train)
        self.z_test = metrics.codes(model, self.test.images, self.y_test)

    def generator(self, device: torch.device | None = None) -> torch.Generator:
        """A fresh generator seeded with the seed: each measure draws its own noise, whatever ran before it."""
        return torch.Generator(device or self.model.device).manual_seed(self.seed)

    @functools.cached_property
    def bounds(self) -> dict[str, torch.Tensor]:
        """Per-image negative ELBO, its terms and the IWAE bound on the likelihood set, in the model's own space;
        for a conditional model, continued on the same generator, −log p(x) and −log p(x|y) for every label."""
        gen = self.generator()
        pick = self.sets.likelihood
        own = self.tests.own(self.model.space)[pick]
        per_image = metrics.likelihood_bounds(self.model, own, None if self.y_test is None else self.y_test[pick],
                                              self.cfg.iwae_samples, gen)
        if CONDITIONAL_PRIOR.met_by(self.model):
            per_image["nll_marginal"], per_image["per_label"] = label_marginal_nll(self.model, own,
                                                                                   self.cfg.iwae_samples, gen)
        return per_image

    def unconditional_bounds(self, space: DataSpace) -> dict[str, torch.Tensor]:
        """The bounds of :attr:`bounds` on the likelihood set shown in ``space``, for an unconditional model: its own
        :attr:`bounds` when ``space`` is its own (the same images, K and draws: computed once, not twice)."""
        if space.name == self.model.space.name:
            return self.bounds
        pick = self.sets.likelihood
        return metrics.likelihood_bounds(self.model, space.test_images(self.tests)[pick], None, self.cfg.iwae_samples,
                                         self.generator())

    @functools.cached_property
    def reconstructions(self) -> torch.Tensor:
        """The mean images decoded from the test codes (the reconstruction error and sharpness read the same)."""
        return self.decode(self.z_test, self.y_test)

    @functools.cached_property
    def fake(self) -> torch.Tensor | None:
        """The prior samples of sample quality and sharpness (the same draws for both); None without a prior."""
        return self.model.prior_images(self.cfg.sample_images, self.generator(), metrics.DECODER_ROWS)

    @functools.cached_property
    def tiles(self) -> torch.Tensor:
        """The decoded latent grid of ``models.latent_grid`` (2-d unconditional latents): the post's picture."""
        return self.decode(self.model.latent_grid(self.cfg.grid_size))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return decoded(self.model, z, y)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return judges.features(self.judge, images)


def _reconstruction(c: Context) -> dict:
    mse = (c.reconstructions - c.test.images).pow(2).sum(-1).mean().item()
    return {"mse_per_image": mse, "mse_per_pixel": mse / INPUT_DIM}


def _elbo(c: Context) -> dict:
    b = c.bounds
    return {**_mean_and_se("neg_elbo", b["neg_elbo"]), "recon": b["recon"].mean().item(),
            "kl": b["kl"].mean().item(), "kl_bits": b["kl"].mean().item() / math.log(2)}


def _iwae_conditional(c: Context) -> dict:
    return {**_mean_and_se("nll_given_y", c.bounds["iwae_nll"]), **_mean_and_se("nll_marginal", c.bounds["nll_marginal"])}


def _latent(c: Context) -> dict:
    subset = torch.arange(len(c.z_test))
    if c.cfg.silhouette_size is not None and c.cfg.silhouette_size < len(c.z_test):
        subset = torch.randperm(len(c.z_test), generator=torch.Generator().manual_seed(c.seed))[:c.cfg.silhouette_size]
    trust = image_sets.subset(len(c.z_test), c.cfg.trust_images, c.cfg.continuity_seed)
    return {"knn_accuracy": metrics.knn_accuracy(c.z_train, c.train.labels, c.z_test, c.test.labels, c.cfg.knn_k),
            "silhouette": metrics.silhouette(c.z_test[subset], c.test.labels[subset]),
            "trustworthiness": metrics.trustworthiness(c.test.images[trust], c.z_test[trust], c.cfg.knn_k)}


def _saturation(c: Context) -> dict:
    # A bounded code that sits on its box's edges has saturated (the post's AE collapses that way).
    low, high = c.model.latent_box
    edge = ((c.z_test - low < SATURATION) | (high - c.z_test < SATURATION)).any(1)
    return {"saturated_fraction": edge.to(torch.float32).mean().item()}


def _grid(c: Context) -> dict:
    """The decoded latent grid's confident share, and the grid over the model's own codes (realness, empty areas)."""
    out = {"confident_fraction": metrics.confident_fraction(judges.predict_proba(c.judge, c.tiles), c.cfg.threshold)}
    return {**out, **continuity.grid_metrics(c.decode, c.features, c.realness, c.z_test, c.cfg.grid_size)}


def _continuity(c: Context) -> dict:
    """Continuity (:mod:`vaelab.measures.continuity`): the fixed pairs' straight paths, decoded."""
    a, b, same = continuity.fixed_pairs(c.test.labels, c.cfg.continuity_pairs, c.cfg.continuity_seed)
    return continuity.path_metrics(c.decode, c.features, c.realness, c.z_test[a], c.z_test[b], same,
                                   c.cfg.continuity_steps)


def _conditional(c: Context) -> dict:
    pick = c.sets.likelihood
    return {"accuracy": conditional_accuracy(c.model, c.judge, CONDITIONAL_SAMPLES, c.generator()),
            "bayes_accuracy": (c.bounds["per_label"].argmin(1) == c.test.labels[pick]).to(torch.float32).mean().item()}


def _style(c: Context) -> dict:
    """The style group (:mod:`vaelab.measures.style`) on a seeded subset of the test codes."""
    pick = image_sets.subset(len(c.z_test), c.cfg.style_images, c.cfg.continuity_seed)
    classify = lambda images: judges.predict_proba(c.judge, images).argmax(1)   # noqa: E731
    return style.style_group(c.decode, classify, c.z_test[pick])


def _sharpness(c: Context) -> dict:
    return sharpness.sharpness_group(c.reconstructions, c.test.images, c.fake)


def _grey8bit(c: Context) -> dict:
    nll = c.unconditional_bounds(spaces.get("dequantized"))["iwae_nll"]
    return {**_mean_and_se("nll", nll), **_mean_and_se("bits_per_dim", bits_per_dim(nll))}


def _grey8bit_exact(c: Context) -> dict | None:
    if c.cfg.quadrature_images <= 0:
        return None
    return exact_group(c.model, c.tests.dequantized[c.sets.exact], c.cfg, c.seed, in_bits=True)


def _binarized(c: Context) -> dict:
    nll = metrics.likelihood_bounds(c.model, c.tests.binarized[c.sets.binarized], None, c.cfg.binarized_iwae_samples,
                                    c.generator())["iwae_nll"]
    return _mean_and_se("iwae_nll", nll)


def _binarized_exact(c: Context) -> dict | None:
    if c.cfg.quadrature_images <= 0:
        return None
    return exact_group(c.model, c.tests.binarized[c.sets.binarized_exact], c.cfg, c.seed, in_bits=False)


def _samples(c: Context) -> dict:
    return sample_quality(c.refs.samples, c.features(c.fake), torch.Generator().manual_seed(c.seed))


@dataclass(frozen=True)
class Measure:
    """One group of metrics/eval/<model>.json (or a part of one: a second entry of a group adds its keys) and the
    models it applies to."""

    group: str
    needs: Needs
    run: Callable[[Context], dict | None]


UNCONDITIONAL_PRIOR = Needs(prior=True, conditional=False)
CONDITIONAL_PRIOR = Needs(prior=True, conditional=True)
# The registry, in the order of the metrics file. The cross-decoder yardsticks (grey8bit.., samples) follow the
# rest: 8-bit bits/dim of densities, the binarised track of binary models, sample quality of every prior.
MEASURES: tuple[Measure, ...] = (
    Measure("reconstruction", ANY, _reconstruction),
    Measure("elbo", Needs(prior=True), _elbo),
    Measure("iwae", UNCONDITIONAL_PRIOR, lambda c: _mean_and_se("nll", c.bounds["iwae_nll"])),
    Measure("iwae", CONDITIONAL_PRIOR, _iwae_conditional),
    Measure("latent", ANY, _latent),
    Measure("latent", Needs(box=True), _saturation),
    Measure("grid", Needs(conditional=False, latent_2d=True), _grid),
    Measure("continuity", Needs(conditional=False), _continuity),
    Measure("conditional", CONDITIONAL_PRIOR, _conditional),
    Measure("style", CONDITIONAL_PRIOR, _style),
    Measure("sharpness", ANY, _sharpness),
    Measure("sharpness", Needs(conditional=False, latent_2d=True), lambda c: sharpness.grid_group(c.tiles)),
    Measure("grey8bit", Needs(prior=True, conditional=False, density=True), _grey8bit),
    Measure("grey8bit_exact", Needs(prior=True, conditional=False, latent_2d=True, density=True), _grey8bit_exact),
    Measure("binarized", Needs(prior=True, conditional=False, binary=True), _binarized),
    Measure("binarized_exact", Needs(prior=True, conditional=False, latent_2d=True, binary=True), _binarized_exact),
    Measure("samples", Needs(prior=True), _samples),
)


GROUPS = tuple(dict.fromkeys(m.group for m in MEASURES))


def check_groups(cfg: EvaluateConfig) -> None:
    """A clear ConfigError for a name in `evaluate.groups` that no measure has."""
    unknown = [g for g in cfg.groups or [] if g not in GROUPS]
    if unknown:
        raise ConfigError(f"params.yaml: evaluate.groups names {', '.join(map(repr, unknown))}: expected some of "
                          f"{', '.join(GROUPS)} (or null for all)")


@torch.no_grad()
def score(model: LatentModel, judge: torch.nn.Module, train: Split, tests: TestSets, refs: References,
          cfg: EvaluateConfig, seed: int, seconds: dict[str, float] | None = None) -> dict:
    """Every measure of :data:`MEASURES` that applies to ``model`` (of the groups ``cfg.groups`` names), on the test split (kNN fitted on the training
    split's codes). ``seconds``, if given, receives each group's wall time (the codes under ``codes``): what
    ``make bench`` prints as the evaluation's parts."""
    seconds = {} if seconds is None else seconds
    start = time.perf_counter()
    context, out = Context(model, judge, train, tests, refs, cfg, seed), {}
    seconds["codes"] = time.perf_counter() - start
    for m in MEASURES:
        start = time.perf_counter()
        wanted = cfg.groups is None or m.group in cfg.groups
        if wanted and m.needs.met_by(model) and (numbers := m.run(context)) is not None:
            out.setdefault(m.group, {}).update(numbers)
            seconds[m.group] = seconds.get(m.group, 0.0) + time.perf_counter() - start
    return out


def mean_over_seeds(per_seed: list[dict]) -> dict:
    """The mean of every (nested) metric over seeds, in the same layout (None where a seed has None: not applicable)."""
    def mean(values: list) -> float | None:
        return None if any(v is None for v in values) else sum(values) / len(values)

    return {k: mean_over_seeds([m[k] for m in per_seed]) if isinstance(v, dict) else mean([m[k] for m in per_seed])
            for k, v in per_seed[0].items()}
