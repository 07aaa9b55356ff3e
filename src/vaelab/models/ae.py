"""The post's autoencoder: a deterministic code squashed into [0, 1]^d by a sigmoid, trained on squared error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from vaelab.core.config import hidden_widths, positive_int
from vaelab.core.distributions import PointMass
from vaelab.data import spaces
from vaelab.data.mnist import INPUT_DIM
from vaelab.models.base import LatentModel
from vaelab.models.layers import StackedBatchNorm, mlp


@dataclass(frozen=True)
class AEConfig:
    latent_dim: int = field(default=2, metadata=positive_int())
    hidden: list[int] = field(default_factory=lambda: [512, 256, 128], metadata=hidden_widths())
    # "batchnorm": normalise the pre-sigmoid code (vaelab's variant). "none": the post's network as written.
    code_norm: Literal["batchnorm", "none"] = "batchnorm"
    # How the linear layers are drawn (vaelab.models.layers.INITS). With "torch" (nn.Linear's) and no code_norm
    # the AE collapses: its codes barely differ between images at the start, Adam drives them all past the
    # sigmoid's slope within a few dozen steps, and the encoder's gradient vanishes (the `collapse` stage
    # measures it). "he" keeps the codes apart from the first step.
    init: Literal["torch", "he"] = "torch"
    # The pixels it trains on (see VAEConfig.data).
    data: str = field(default="grey", metadata=spaces.field_metadata())


class Autoencoder(LatentModel):
    """z = sigmoid(norm(encoder(x))) in [0, 1]^d; x̂ = sigmoid(decoder(z)); loss Σ_i (x_i − x̂_i)²."""

    Config = AEConfig
    has_prior = False
    latent_box = (0.0, 1.0)

    def __init__(self, cfg: AEConfig, stack: int = 1):
        super().__init__(cfg, stack)
        self.encoder = mlp([INPUT_DIM, *cfg.hidden, cfg.latent_dim], stack, cfg.init)
        self.code_norm = StackedBatchNorm(cfg.latent_dim, stack) if cfg.code_norm == "batchnorm" else torch.nn.Identity()
        self.decoder = mlp([cfg.latent_dim, *reversed(cfg.hidden), INPUT_DIM], stack, cfg.init)

    def pre_code(self, x: torch.Tensor) -> torch.Tensor:
        """The code before its sigmoid (where the post's AE collapses: vaelab.studies.collapse)."""
        return self.code_norm(self.encoder(x))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> PointMass:
        return PointMass(torch.sigmoid(self.pre_code(x)))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z)

    def mean_image(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, noise=None) -> dict[str, torch.Tensor]:
        """Summed squared error per image, batch mean (per seed): the AE is not a probabilistic model, so its
        loss is a distortion, not a likelihood (no KL: ``kl`` is 0; no noise is drawn)."""
        recon = (x - self.mean_image(self.encode(x).mean)).pow(2).sum(-1).mean(-1)
        return {"loss": recon, "recon": recon, "kl": torch.zeros_like(recon)}

    def test_terms(self, x: torch.Tensor, y: torch.Tensor | None = None, noise=None) -> dict[str, torch.Tensor]:
        """The loss terms and ``mse``: for the AE its loss is that squared error (one encoder and decoder pass)."""
        out = self.loss(x, y, noise)
        return {**out, "mse": out["recon"]}
