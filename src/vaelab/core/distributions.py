"""What an encoder returns: a distribution over the latent code that callers ask, never inspect.

``model.encode(x)`` returns one of these (as diffusers' autoencoders return a
``DiagonalGaussianDistribution``): ``.mean`` is the deterministic code used by the figures and the
latent metrics, ``.rsample()`` a reparameterised sample for training, ``.kl()`` the KL divergence to
the prior N(0, I) (or to another diagonal Gaussian), zero for an autoencoder's point mass.
"""

from __future__ import annotations

import math

import torch

from vaelab.core import streams

LOG_2PI = math.log(2 * math.pi)  # the one definition (likelihoods, importance sampling)


class DiagonalGaussian:
    """q(z|x) = N(mean, diag(exp(logvar)))."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean, self.logvar = mean, logvar

    @property
    def std(self) -> torch.Tensor:
        return (0.5 * self.logvar).exp()

    def rsample(self, k: int | None = None, generator: streams.Source = None) -> torch.Tensor:
        """z = mean + std * eps, eps ~ N(0, I) (Kingma & Welling 2014, eq. 10): gradients flow through.

        ``k`` draws per row give [B, k, d]; without it, one draw of the mean's shape ([B, d], or [S, B, d]
        for stacked seeds, each seed drawing from its own stream of ``generator``).
        """
        shape = self.mean.shape if k is None else (self.mean.shape[0], k, self.mean.shape[1])
        eps = streams.normal(shape, generator, self.mean)
        mean, std = (self.mean, self.std) if k is None else (self.mean[:, None], self.std[:, None])
        return mean + std * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) summed over latent dimensions; ``z`` is [B, d] or [B, K, d]."""
        mean, logvar = (self.mean, self.logvar) if z.dim() == self.mean.dim() else (self.mean[:, None], self.logvar[:, None])
        return -0.5 * ((z - mean).pow(2) / logvar.exp() + logvar + LOG_2PI).sum(-1)

    def kl(self, other: DiagonalGaussian | None = None) -> torch.Tensor:
        """KL(self ‖ other) in closed form, one value per row; ``other`` = None is the prior N(0, I)
        (Kingma & Welling 2014, appendix B): −½ Σ_j (1 + logvar_j − mean_j² − exp(logvar_j)); otherwise
        ½ Σ_j [log σ²_p − log σ²_q + (σ²_q + (μ_q − μ_p)²) / σ²_p − 1] with p = other."""
        if other is None:
            return -0.5 * (1 + self.logvar - self.mean.pow(2) - self.logvar.exp()).sum(-1)
        return 0.5 * (other.logvar - self.logvar + (self.logvar.exp() + (self.mean - other.mean).pow(2))
                      / other.logvar.exp() - 1).sum(-1)


class PointMass:
    """An autoencoder's code: all mass on one point, no KL (the AE has no prior)."""

    def __init__(self, z: torch.Tensor):
        self.mean = z

    def rsample(self, k: int | None = None, generator: streams.Source = None) -> torch.Tensor:
        return self.mean if k is None else self.mean[:, None].expand(-1, k, -1)

    def kl(self, other: object = None) -> torch.Tensor:
        return torch.zeros(self.mean.shape[:-1], device=self.mean.device, dtype=self.mean.dtype)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension: the prior p(z)."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
