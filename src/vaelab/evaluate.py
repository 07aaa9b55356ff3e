"""The study's claims as numbers: pure, batched metric functions on tensors (no files, no tracking).

Notation as in :mod:`vaelab.losses`. All log-densities are in nats per image. Two kinds of metric:

- likelihood and distortion: squared reconstruction error of the mean code (AE: z, VAE: the mean of
  q(z|x)), the negative ELBO split into reconstruction and KL, and the importance-weighted bound on
  log p(x) of Burda et al. (2015);
- structure of the latent space: kNN digit accuracy, silhouette by digit, and the fraction of a
  decoded grid a classifier calls a digit with confidence.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from vaelab import losses
from vaelab.data import NUM_CLASSES, batches
from vaelab.latent import encode_mean
from vaelab.models import VAE, Model

LOG_2PI = math.log(2 * math.pi)
# Rows (images x samples) pushed through the decoder at once: big enough for fast matrix products,
# small enough that the [rows, 784] activations stay around 50 MB.
DECODER_ROWS = 16_384

# (z [B, K, d], x [B, D]) -> log p(x | z) [B, K]
LogLikelihood = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def reconstruction_error(model: Model, x: torch.Tensor, codes: torch.Tensor | None = None,
                         batch_size: int = 1024) -> torch.Tensor:
    """Summed squared error per image of decode(mean code): comparable across AE and VAEs.

    ``codes`` are :func:`vaelab.latent.encode_mean` of ``x`` when the caller has them already.
    """
    device = next(model.parameters()).device
    z = encode_mean(model, x, batch_size) if codes is None else codes
    return torch.cat([losses.squared_error(model.decode(z[i].to(device)).cpu(), x[i])
                      for i in batches(len(x), batch_size)])


def decoder_log_likelihood(model: VAE) -> LogLikelihood:
    """log p(x|z) under the model's own decoder, as a normalised density in x where there is one.

    Gaussian (unit variance): losses.gaussian_nll drops the constant D/2 log(2 pi) (it does not change
    training); it is included here, so the value is a true log-density. Bernoulli: -BCE, as in
    training. Both are written as a dot product with x plus a term of z alone (the same values as
    :mod:`vaelab.losses`, tested), which saves two passes over the [B*K, 784] decoder output.
    """
    def log_likelihood(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b, k, d = z.shape
        logits = model.decoder_logits(z.reshape(b * k, d)).view(b, k, -1)
        if model.cfg.likelihood == "bernoulli":  # sum_i x_i l_i - softplus(l_i)
            return torch.bmm(logits, x[:, :, None]).squeeze(2) - F.softplus(logits).sum(-1)
        mean = torch.sigmoid_(logits)             # -1/2 |x - m|^2 = x.m - 1/2 |m|^2 - 1/2 |x|^2
        x_dot_m = torch.bmm(mean, x[:, :, None]).squeeze(2)
        m_sq = mean.square_().sum(-1)
        return x_dot_m - 0.5 * (m_sq + x.square().sum(-1, keepdim=True) + x.shape[-1] * LOG_2PI)
    return log_likelihood


def importance_log_weights(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, log_likelihood: LogLikelihood,
                           k: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw K samples z_k ~ q(z|x) = N(mu, exp(logvar)) per image.

    Returns the log importance weights log p(x|z_k) + log p(z_k) - log q(z_k|x) and log p(x|z_k), both [B, K].
    """
    eps = torch.randn((mu.shape[0], k, mu.shape[1]), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu[:, None] + (0.5 * logvar).exp()[:, None] * eps
    log_q = -0.5 * (eps.pow(2) + logvar[:, None] + LOG_2PI).sum(-1)
    log_prior = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
    log_lik = log_likelihood(z, x)
    return log_lik + log_prior - log_q, log_lik


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """log (1/K) sum_k w_k <= log p(x) per image (Burda et al. 2015, eq. 8); K = log_weights.shape[1]."""
    return torch.logsumexp(log_weights, dim=1) - math.log(log_weights.shape[1])


@torch.no_grad()
def vae_likelihood(model: VAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                   rows: int = DECODER_ROWS) -> dict[str, torch.Tensor]:
    """Per-image negative ELBO (= recon + KL) and IWAE negative log-likelihood with ``k`` samples, in nats.

    recon is the Monte-Carlo mean of -log p(x|z) over the same K samples; KL is in closed form.
    """
    device = next(model.parameters()).device
    log_lik = decoder_log_likelihood(model)
    out: dict[str, list[torch.Tensor]] = {"recon": [], "kl": [], "iwae_nll": []}
    for idx in batches(len(x), max(1, rows // k)):
        xb = x[idx].to(device)
        mu, logvar = model.encode(xb)
        log_w, ll = importance_log_weights(xb, mu, logvar, log_lik, k, generator)
        out["recon"].append(-ll.mean(1).cpu())
        out["kl"].append(losses.kl_std_normal(mu, logvar).cpu())
        out["iwae_nll"].append(-iwae_bound(log_w).cpu())
    result = {key: torch.cat(v) for key, v in out.items()}
    result["neg_elbo"] = result["recon"] + result["kl"]
    return result


def knn_accuracy(train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor, test_y: torch.Tensor,
                 k: int, chunk: int = 1024) -> float:
    """Accuracy of a k-nearest-neighbour vote (Euclidean; ties go to the smaller label) fitted on train."""
    k = min(k, len(train_z))
    train_sq = train_z.pow(2).sum(1)
    correct = 0
    for idx in batches(len(test_z), chunk):
        # |t|^2 - 2 q.t ranks neighbours as |q - t|^2 does, in one matrix product (2x faster than cdist)
        nearest = torch.addmm(train_sq, test_z[idx], train_z.T, alpha=-2).topk(k, dim=1, largest=False).indices
        votes = torch.zeros(len(idx), NUM_CLASSES).scatter_add_(1, train_y[nearest], torch.ones(nearest.shape))
        correct += (votes.argmax(1) == test_y[idx]).sum().item()
    return correct / len(test_z)


def silhouette(z: torch.Tensor, labels: torch.Tensor, chunk: int = 1024) -> float:
    """Mean silhouette (Rousseeuw 1987) of points ``z`` clustered by ``labels``, in [-1, 1].

    Same convention as scikit-learn: a point alone in its cluster scores 0.
    """
    classes, y = labels.unique(return_inverse=True)
    if len(classes) < 2:
        raise ValueError("silhouette needs at least two clusters")
    onehot = torch.nn.functional.one_hot(y, len(classes)).to(z.dtype)
    sizes = onehot.sum(0)
    scores = []
    for idx in batches(len(z), chunk):
        sums = torch.cdist(z[idx], z) @ onehot            # [chunk, C]: summed distance to each cluster
        own = y[idx]
        own_size = sizes[own]
        a = sums.gather(1, own[:, None]).squeeze(1) / (own_size - 1).clamp(min=1)  # self-distance is 0
        mean_other = (sums / sizes).scatter(1, own[:, None], math.inf)
        b = mean_other.min(1).values
        s = (b - a) / torch.maximum(a, b).clamp(min=1e-12)
        scores.append(torch.where(own_size > 1, s, torch.zeros_like(s)))
    return torch.cat(scores).mean().item()


def confident_fraction(probs: torch.Tensor, threshold: float) -> float:
    """Fraction of rows of class probabilities whose largest entry is at least ``threshold``."""
    return (probs.max(1).values >= threshold).to(torch.float32).mean().item()
