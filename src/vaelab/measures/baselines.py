"""Likelihood baselines with no latent at all: the bar a VAE's bits/dim must clear to mean anything.

"Better than uniform (8 bits/dim)" is met by any model. These models are fitted on the training images and
scored on exactly the test images of a likelihood table (:mod:`vaelab.data.image_sets`), in nats per image and, for
the 8-bit grey images, bits/dim of the discrete 8-bit data (the unit of the VAEs' bits/dim):

- ``uniform``: every one of 256 levels equally likely (exactly 8 bits/dim);
- ``histogram``: one 256-bin histogram of all pixels, whatever their position;
- ``histogram_per_pixel``: a 256-bin histogram per position (784 of them), the pixels independent.
  Both with add-one (Laplace) smoothing, so no test level has probability 0.

For the binarised track (pixels 0/1, on one seeded binarisation of the training images, as the fixed binarised
test set is of the test images):

- ``bernoulli_per_pixel``: an independent Bernoulli per position (add-one smoothed);
- ``bernoulli_mixture``: a mixture of :data:`MIXTURE_K` such products fitted by EM (:func:`fit_mixture`,
  :data:`EM_STEPS` steps from seeded random responsibilities, add-one smoothed M-step).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LEVELS = 256
MIXTURE_K = 10
EM_STEPS = 50


def levels(images: Tensor) -> Tensor:
    """The 8-bit values k of grey images k/255, [N, 784] int64."""
    return (images * (LEVELS - 1)).round().to(torch.int64)


def to_bits_per_dim(nll_nats: Tensor, dims: int = 784) -> Tensor:
    """Nats per image of the discrete 8-bit data to bits per pixel."""
    return nll_nats / (dims * math.log(2))


def uniform_nll(images: Tensor) -> Tensor:
    """[N] −log p(x) in nats of the uniform distribution over the 256 levels (784 ln 256)."""
    return torch.full((len(images),), images.shape[1] * math.log(LEVELS))


def fit_histogram(train: Tensor, per_pixel: bool) -> Tensor:
    """log-probabilities of the 256 levels, add-one smoothed: [256] for all positions together, or [784, 256]."""
    k = levels(train)
    if per_pixel:
        counts = torch.zeros(k.shape[1], LEVELS, dtype=torch.float64)
        counts.scatter_add_(1, k.T.contiguous(), torch.ones_like(k.T, dtype=torch.float64))
    else:
        counts = torch.bincount(k.reshape(-1), minlength=LEVELS).to(torch.float64)
    return ((counts + 1) / (counts + 1).sum(-1, keepdim=True)).log()


def histogram_nll(log_p: Tensor, images: Tensor) -> Tensor:
    """[N] −log p(x) in nats of a fitted histogram (:func:`fit_histogram`)."""
    k = levels(images)
    if log_p.dim() == 1:
        return -log_p[k].sum(1).to(torch.float32)
    return -log_p.gather(1, k.T.contiguous()).T.sum(1).to(torch.float32)


def fit_bernoulli(train_bits: Tensor) -> Tensor:
    """[784] add-one smoothed probability of a 1 at each position."""
    return (train_bits.sum(0) + 1) / (len(train_bits) + 2)


def _log_lik(bits: Tensor, mu: Tensor) -> Tensor:
    """[N, K] log p(x | component k) of products of Bernoullis with means ``mu`` [K, 784]."""
    return bits @ mu.log().T + (1 - bits) @ (1 - mu).log().T


def bernoulli_nll(mu: Tensor, bits: Tensor) -> Tensor:
    """[N] −log p(x) in nats of independent Bernoullis with means ``mu`` [784]."""
    return -_log_lik(bits, mu[None])[:, 0]


def fit_mixture(train_bits: Tensor, k: int = MIXTURE_K, steps: int = EM_STEPS, seed: int = 0
                ) -> tuple[Tensor, Tensor, list[float]]:
    """(log mixing weights [K], means [K, 784], the mean training log-likelihood after each step) by EM."""
    gen = torch.Generator().manual_seed(seed)
    resp = torch.rand(len(train_bits), k, generator=gen)
    resp = resp / resp.sum(1, keepdim=True)
    history = []
    for _ in range(steps):
        weight = resp.sum(0)
        mu = (resp.T @ train_bits + 1) / (weight[:, None] + 2)           # M-step, add-one smoothed
        log_pi = (weight / weight.sum()).log()
        joint = _log_lik(train_bits, mu) + log_pi                          # E-step
        total = torch.logsumexp(joint, 1)
        resp = (joint - total[:, None]).exp()
        history.append(total.mean().item())
    return log_pi, mu, history


def mixture_nll(log_pi: Tensor, mu: Tensor, bits: Tensor) -> Tensor:
    """[N] −log p(x) in nats of a fitted mixture of Bernoulli products."""
    return -torch.logsumexp(_log_lik(bits, mu) + log_pi, 1)


def summary(nll: Tensor, bits_per_dim: bool) -> dict[str, float]:
    """{nll, nll_se[, bits_per_dim, bits_per_dim_se]} over the images."""
    n = len(nll)
    out = {"nll": nll.mean().item(), "nll_se": (nll.std() / math.sqrt(n)).item() if n > 1 else 0.0}
    if bits_per_dim:
        b = to_bits_per_dim(nll)
        out.update(bits_per_dim=b.mean().item(), bits_per_dim_se=(b.std() / math.sqrt(n)).item() if n > 1 else 0.0)
    return out
