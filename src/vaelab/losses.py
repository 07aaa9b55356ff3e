"""The losses of the study as short pure functions, each returning one value per image.

Notation: x is an image in [0, 1]^784, z its latent code, q(z|x) = N(mu, diag(exp(logvar))) the
encoder, p(z) = N(0, I) the prior. Means over the batch are taken by the caller.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def squared_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_i (x_i - x_hat_i)^2: the autoencoder's loss, and the distortion every model is scored on."""
    return (x - x_hat).pow(2).sum(dim=-1)


def gaussian_nll(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log N(x; x_hat, I) without its constant D/2 log(2 pi): half the squared error."""
    return 0.5 * squared_error(x_hat, x)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)], p = sigmoid(logits), computed stably from logits."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)


def kl_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in closed form (Kingma & Welling 2014, appendix B):
    -1/2 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): a sample of q(z|x) that gradients flow through."""
    return mu + torch.randn_like(mu) * (0.5 * logvar).exp()


def reconstruction_nll(likelihood: str, decoder_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) under the decoder's likelihood; ``decoder_out`` is the decoder's pre-sigmoid output."""
    if likelihood == "bernoulli":
        return bernoulli_nll(decoder_out, x)
    return gaussian_nll(torch.sigmoid(decoder_out), x)
