"""The one importance-sampling kernel: ELBO and importance-weighted bounds from samples of a Gaussian proposal.

Every estimate of log p(x) (or of log p(x_missing | x_given)) by importance sampling in vaelab comes from here:
the evaluation's IWAE bound (:mod:`vaelab.measures.metrics`, :mod:`vaelab.studies.scorecard`), the bounds of the inference
report (:mod:`vaelab.measures.inference`) and the quadrant-completion NLL (:mod:`vaelab.studies.quadrants`). With z_s = μ + σ·ε_s,
ε_s ~ N(0, I), the log weights are

    log w_s = log p(x | z_s) + log p(z_s) − log q(z_s | x),

and from M of them per image the kernel returns the Monte-Carlo ELBO (mean of log w), the K-sample bound
L_K = E log (1/K) Σ_k w_k (Burda et al. 2015, eq. 8) for several K from the one sample set (disjoint blocks of
K, see :func:`bounds`), and their standard errors over images (:func:`standard_error`, :func:`mean_se`).

Two properties hold by construction, not by luck:

- **round-off**: log q is computed from ε directly, −½ Σ (ε² + log σ² + log 2π), never as q.log_prob(μ + σε),
  whose (z − μ)/σ loses the digits of a narrow posterior (σ ~ 1e-2 costs ~2 decimal digits of ε in float32);
- **chunking**: the numbers of an image do not depend on which other images are in the call, nor on how the
  caller splits its images. The noise is passed in per image (drawn up front), and every call of the
  log-likelihood (the decoder) has the same shape, ``rows_per_call(M, rows)``, whatever the number of images:
  the last chunk is padded with copies of its last image and the padding discarded. BLAS picks its kernels by
  matrix shape, so equal shapes are what makes the results equal bit for bit (tests/test_importance.py).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor

from vaelab.core.distributions import LOG_2PI, DiagonalGaussian, standard_normal_log_prob
from vaelab.core.errors import ConfigError

# (z [n, k, d], idx [n]) -> [n, k]: log p(x_i | z_ik) for the images idx (indices into the caller's images);
# the caller closes over its images (and labels, given pixels): the decoder pass plus the likelihood.
LogLik = Callable[[Tensor, Tensor], Tensor]
# (z [n, k, d], idx [n]) -> [n, k]: log p(z_ik) under the prior of image idx_i.
LogPrior = Callable[[Tensor, Tensor], Tensor]

# Decoded rows per call: measured on the study's 2-128-256-512-784 decoder, K = 1000, 2 threads (see
# benchmarks/importance.py): 4096 rows keep a layer's activations ([4096, 512] fp32 = 8 MB) near the cache and
# reach ~80% of the matmul peak, where 16,384 rows (the old default) spilled to memory and reached ~45%.
ROWS = 4096


class Estimates(NamedTuple):
    elbo: Tensor              # [B] Monte-Carlo ELBO: the mean of log w over all M samples (= L_1's estimate)
    iwae: dict[int, Tensor]   # K -> [B]: the estimate of L_K from ⌊M/K⌋ disjoint blocks of K samples
    log_lik: Tensor           # [B] the mean of log p(x|z) over the same samples (the reconstruction term)
    elbo_se: float            # standard error over images of elbo's mean (nan for one image)
    iwae_se: dict[int, float]  # K -> the same for iwae[K]


def mean_se(values: Tensor) -> tuple[float, float]:
    """The mean over images and its standard error s/√N (the scored images as a sample), for "mean ± s.e."."""
    if values.dim() != 1 or values.numel() < 2:
        raise ValueError(f"values.shape = {tuple(values.shape)}: expected [N] with N >= 2")
    return values.mean().item(), standard_error(values)


def standard_error(values: Tensor) -> float:
    """s/√N of values [N] over images; nan for one image (no spread to measure)."""
    return (values.std() / math.sqrt(values.numel())).item() if values.numel() >= 2 else math.nan


def check_ks(ks: Sequence[int]) -> None:
    if not (len(ks) > 0 and all(isinstance(k, int) and k >= 1 for k in ks)):
        raise ConfigError(f"ks = {tuple(ks)!r}: expected a non-empty sequence of sample counts >= 1")


def bounds(log_w: Tensor, ks: Sequence[int], log_lik: Tensor | None = None) -> Estimates:
    """The estimates from log weights [B, M] (and log p(x|z) [B, M], for the reconstruction term).

    Each L_K is the mean of the log-mean-exp of ⌊M/K⌋ disjoint blocks of K samples: every block is K
    independent draws, so each is an unbiased estimate of L_K, and no sample is wasted. When the ks divide each
    other (1, 10, 100, 1000) the estimates increase with K for every image, not only in expectation (a
    log-mean-exp over a union of blocks is at least the mean of the blocks' log-mean-exps, by concavity).
    """
    check_ks(ks)
    b, m = log_w.shape
    iwae = {}
    for k in ks:
        if k > m:
            raise ValueError(f"K = {k} needs at least {k} samples per image; got {m}")
        blocks = log_w[:, : (m // k) * k].reshape(b, m // k, k)
        iwae[k] = (torch.logsumexp(blocks, -1) - math.log(k)).mean(-1)
    elbo = log_w.mean(-1)
    ll = elbo if log_lik is None else log_lik.mean(-1)
    return Estimates(elbo, iwae, ll, standard_error(elbo), {k: standard_error(v) for k, v in iwae.items()})


def rows_per_call(samples: int, rows: int = ROWS) -> tuple[int, int]:
    """(images, samples) per call of the log-likelihood: whole images while M ≤ rows, else blocks of samples.
    Depends on M and ``rows`` only, never on the number of images, so every call has the same shape."""
    if samples <= rows:
        return max(1, rows // samples), samples
    blocks = -(-samples // rows)                  # equal blocks: M = 5000, rows = 4096 pads 0, not 3192 rows
    return 1, -(-samples // blocks)


def log_weights(log_lik: LogLik, q: DiagonalGaussian, eps: Tensor, log_prior: LogPrior | None = None,
                rows: int = ROWS) -> tuple[Tensor, Tensor]:
    """log w [B, M] and log p(x|z) [B, M] for z = μ + σ·ε, ε = ``eps`` [B, M, d] (draw it per image, up front).

    ``log_prior`` defaults to N(0, I). Every call of ``log_lik`` gets [n, k, d] with (n, k) =
    :func:`rows_per_call` (M, rows): the last images and samples are padded (copies of the last image, zero
    noise) and the padding discarded, so the result of an image is the same bits in any call (module docstring).
    """
    b, m, d = eps.shape
    n, k = rows_per_call(m, rows)
    mean, std = q.mean[:, None], q.std[:, None]
    log_var = q.logvar[:, None]
    ll = torch.empty(b, m, device=eps.device, dtype=eps.dtype)
    log_w = torch.empty_like(ll)
    for s in range(0, b, n):
        idx = torch.arange(s, s + n, device=eps.device).clamp_max(b - 1)      # padded with the last image
        for t in range(0, m, k):
            e = eps[idx, t:t + k]
            if e.shape[1] < k:                                                # the last sample block, padded
                e = torch.cat([e, e.new_zeros(n, k - e.shape[1], d)], 1)
            z = mean[idx] + std[idx] * e
            lik = log_lik(z, idx)
            prior = standard_normal_log_prob(z) if log_prior is None else log_prior(z, idx)
            log_q = -0.5 * (e.pow(2) + log_var[idx] + LOG_2PI).sum(-1)   # from ε itself: see the docstring
            used, width = min(n, b - s), min(k, m - t)
            ll[s:s + used, t:t + width] = lik[:used, :width]
            log_w[s:s + used, t:t + width] = (lik + prior - log_q)[:used, :width]
    return log_w, ll


@torch.no_grad()
def estimate(log_lik: LogLik, q: DiagonalGaussian, eps: Tensor, ks: Sequence[int] = (1,),
             log_prior: LogPrior | None = None, rows: int = ROWS) -> Estimates:
    """ELBO, L_K for every K in ``ks`` and their standard errors, from the samples z = μ + σ·ε of q (see
    :func:`log_weights` for the arguments, :func:`bounds` for the estimates)."""
    check_ks(ks)
    log_w, ll = log_weights(log_lik, q, eps, log_prior, rows)
    return bounds(log_w, ks, ll)


def draw(q: DiagonalGaussian, samples: int, generator: torch.Generator | None = None) -> Tensor:
    """ε [B, M, d] ~ N(0, I) for the M samples of every image of q, drawn up front in one call."""
    b, d = q.mean.shape
    return torch.randn(b, samples, d, generator=generator, device=q.mean.device, dtype=q.mean.dtype)
