"""Latent-space helpers shared by the figures and the evaluation: codes of a dataset, and the grid
of latent points whose decodings form the "manifold" picture."""

from __future__ import annotations

import torch

from vaelab.data import batches
from vaelab.models import Model

# Quantiles 0.05 ... 0.95 keep the VAE grid inside the bulk of N(0, 1), as in Kingma & Welling (2014), fig. 4.
VAE_QUANTILE_RANGE = (0.05, 0.95)


@torch.no_grad()
def encode_mean(model: Model, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The deterministic code of each image: z for the AE, the mean of q(z|x) for a VAE."""
    device = next(model.parameters()).device
    codes = []
    for idx in batches(len(x), batch_size):
        out = model.encode(x[idx].to(device))
        codes.append((out[0] if isinstance(out, tuple) else out).cpu())
    return torch.cat(codes)


def grid_axis(kind: str, n: int) -> torch.Tensor:
    """``n`` evenly spaced coordinates along one latent axis.

    AE: cell centres of [0, 1] (its sigmoid latent). VAE: evenly spaced quantiles of N(0, 1).
    """
    if kind == "ae":
        return (torch.arange(n, dtype=torch.float32) + 0.5) / n
    low, high = VAE_QUANTILE_RANGE
    return torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(low, high, n))


def manifold_grid(kind: str, n: int) -> torch.Tensor:
    """[n*n, 2] latent points, row-major with the second coordinate decreasing down the rows
    (so the decoded tiles laid out as an image match a scatter plot's axes)."""
    axis = grid_axis(kind, n)
    z1, z0 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    return torch.stack([z0.reshape(-1), z1.reshape(-1)], dim=1)
