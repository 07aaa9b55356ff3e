"""The VAE: diagonal-Gaussian q(z|x), prior N(0, I), and any decoder likelihood of :mod:`vaelab.models.likelihoods`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from vaelab.core.config import hidden_widths, non_negative, positive_int
from vaelab.core.distributions import DiagonalGaussian
from vaelab.core.errors import ConfigError
from vaelab.data import spaces
from vaelab.data.mnist import INPUT_DIM
from vaelab.models import likelihoods
from vaelab.models.base import LatentModel
from vaelab.models.layers import mlp


@dataclass(frozen=True)
class VAEConfig:
    latent_dim: int = field(default=2, metadata=positive_int())
    hidden: list[int] = field(default_factory=lambda: [512, 256, 128], metadata=hidden_widths())
    # The decoder's p(x|z): a mapping with `name` and that likelihood's own settings, e.g.
    # {name: gaussian, sigma: 1.0} or {name: bernoulli}; validated by vaelab.models.likelihoods.build.
    likelihood: dict = field(default_factory=lambda: {"name": "bernoulli"})
    # Weight of the KL term: 1 is the ELBO, other values a β-VAE.
    beta: float = field(default=1.0, metadata=non_negative())
    # The pixels the model trains on: "grey" (k/255, as the post), "dequantized" ((k + u)/256, u ~ U(0,1),
    # for proper densities on [0, 1]), "binarized" (dynamically binarised, x ~ Bernoulli(grey)).
    data: str = field(default="grey", metadata=spaces.field_metadata())


class VAE(LatentModel):
    """q(z|x) = N(μ(x), diag σ²(x)) sampled by the reparameterisation trick; p(z) = N(0, I)."""

    Config = VAEConfig
    # Width of a condition concatenated to the encoder's x and the decoder's z (0: unconditional; the CVAE
    # of vaelab.models.cvae sets it to its one-hot label width and reuses everything else).
    condition_dim: ClassVar[int] = 0

    @classmethod
    def validate(cls, cfg: VAEConfig, path: str) -> None:
        lik = likelihoods.build(cfg.likelihood, f"{path}.likelihood")
        if lik.open_interval and not spaces.get(cfg.data).open_interval:
            inside = sorted(s.name for s in spaces.SPACES.values() if s.open_interval)
            raise ConfigError(f"{path}.data = {cfg.data!r}: the {lik.name} likelihood needs pixels strictly inside "
                              f"(0, 1); expected `data:` one of {inside}")

    def __init__(self, cfg: VAEConfig, stack: int = 1):
        super().__init__(cfg, stack)
        self.likelihood = likelihoods.build(cfg.likelihood, stack=stack)
        self.encoder = mlp([INPUT_DIM + self.condition_dim, *cfg.hidden, 2 * cfg.latent_dim], stack)
        self.decoder = mlp([cfg.latent_dim + self.condition_dim, *reversed(cfg.hidden),
                            self.likelihood.params_per_pixel * INPUT_DIM], stack)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalGaussian:
        mean, logvar = self.encoder(x).chunk(2, dim=-1)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z)
