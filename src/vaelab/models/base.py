"""The protocol every registered model follows, so that the loop, the figures and the evaluation ask the
model instead of testing its kind.

A model maps images x (and, for a conditional model, one-hot labels y) to a posterior over a latent code
and back:

- ``encode(x, y)`` returns a :mod:`vaelab.core.distributions` object (``.mean``, ``.rsample()``, ``.kl()``);
- ``decode(z, y)`` returns the decoder's raw output, the parameters of ``self.likelihood``;
- ``mean_image(z, y)`` is what figures draw: the likelihood's mean in [0, 1];
- ``loss(x, y, noise)`` is the training objective's terms (batch means, one per seed), its noise drawn from
  ``noise`` (:mod:`vaelab.core.streams`); ``test_terms`` adds the reconstruction error of the mean code;
- ``space`` is the data space the model trains on (:mod:`vaelab.data.spaces`);
- a model built with ``stack = S`` holds S seeds side by side (:mod:`vaelab.models.layers`): inputs and
  outputs then carry a leading seed axis ``[S, B, ...]``;
- ``has_prior`` says whether z ~ p(z) can be sampled and likelihood bounds apply; ``latent_axis(n)``
  gives evenly spaced coordinates of its latent box (for the decoded grid); ``latent_box`` is the box
  when the code is bounded, else None.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from vaelab.core import streams
from vaelab.core.distributions import DiagonalGaussian, PointMass
from vaelab.data import spaces
from vaelab.data.mnist import NUM_CLASSES, batches

Posterior = DiagonalGaussian | PointMass
# Quantiles 0.05 ... 0.95 keep a grid inside the bulk of N(0, 1), as in Kingma & Welling (2014), fig. 4.
NORMAL_QUANTILE_RANGE = (0.05, 0.95)


class LatentModel(nn.Module):
    """Base class of the registered models (see the module docstring for the protocol)."""

    kind: ClassVar[str]            # the `kind` of params.yaml, set by the registry
    has_prior: ClassVar[bool] = True
    conditional: ClassVar[bool] = False   # True: encode/decode take one-hot labels y
    latent_box: ClassVar[tuple[float, float] | None] = None

    def __init__(self, cfg, stack: int = 1):
        super().__init__()
        self.cfg = cfg
        self.stack = stack

    @property
    def space(self) -> spaces.DataSpace:
        """The pixels this model trains and is scored on."""
        return spaces.get(self.cfg.data)

    @classmethod
    def validate(cls, cfg, path: str) -> None:
        """Checks across fields of ``cfg`` beyond its dataclass (raise ConfigError naming ``path``)."""

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def mean_image(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """[N, 784] pixel means in [0, 1]: what the figures draw."""
        return self.likelihood.mean(self.decode(z, y))

    def condition(self, labels: torch.Tensor) -> torch.Tensor | None:
        """What encode and decode take as ``y`` for images with these digit labels: the labels for a conditional
        model, None for one that ignores them."""
        return labels if self.conditional else None

    @torch.no_grad()
    def prior_images(self, n: int, generator: torch.Generator, rows: int) -> torch.Tensor | None:
        """``n`` mean images decoded from z ~ N(0, I) (a conditional model: labels 0–9 in turn), decoded ``rows`` at
        a time, on the CPU; None for a model without a prior."""
        if not self.has_prior:
            return None
        z = torch.randn(n, self.cfg.latent_dim, generator=generator, device=self.device)
        y = self.condition(torch.arange(n, device=self.device) % NUM_CLASSES)
        return torch.cat([self.mean_image(z[i], None if y is None else y[i]).cpu() for i in batches(n, rows)])

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None,
             noise: streams.Source = None) -> dict[str, torch.Tensor]:
        """β-weighted negative ELBO, batch means: E_q[−log p(x|z)] + β KL(q(z|x) ‖ p(z)) (Kingma & Welling
        2014, eq. 3; Higgins et al. 2017 for β ≠ 1), with one reparameterised sample of z drawn from ``noise``.
        Means over the batch axis (-1 of the per-image terms): one value per seed of a stacked model."""
        return self.loss_given(self.encode(x, y), x, y, noise)

    def loss_given(self, q: Posterior, x: torch.Tensor, y: torch.Tensor | None = None,
                   noise: streams.Source = None) -> dict[str, torch.Tensor]:
        """:meth:`loss` with the posterior q(z|x) already computed."""
        recon = -self.likelihood.log_prob(self.decode(q.rsample(generator=noise), y), x).mean(-1)
        kl = q.kl().mean(-1)
        return {"loss": recon + self.cfg.beta * kl, "recon": recon, "kl": kl}

    def test_terms(self, x: torch.Tensor, y: torch.Tensor | None = None,
                   noise: streams.Source = None) -> dict[str, torch.Tensor]:
        """The loss terms and ``mse``, the summed squared error of the decoded posterior mean (the one
        reconstruction error every model shares), batch means per seed. One encoder pass serves both: the
        per-epoch test pass is a tenth of the training's arithmetic, and this is a quarter of it."""
        q = self.encode(x, y)
        mse = (self.mean_image(q.mean, y) - x).pow(2).sum(-1).mean(-1)
        return {**self.loss_given(q, x, y, noise), "mse": mse}

    def latent_axis(self, n: int) -> torch.Tensor:
        """``n`` evenly spaced coordinates along one latent axis: cell centres of the latent box when it is
        bounded, else evenly spaced quantiles of N(0, 1)."""
        if self.latent_box is not None:
            low, high = self.latent_box
            return low + (high - low) * (torch.arange(n, dtype=torch.float32) + 0.5) / n
        low, high = NORMAL_QUANTILE_RANGE
        return torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(low, high, n))

    def latent_grid(self, n: int) -> torch.Tensor:
        """[n*n, 2] latent points, row-major with the second coordinate decreasing down the rows (so the
        decoded tiles laid out as an image match a scatter plot's axes)."""
        axis = self.latent_axis(n)
        z1, z0 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
        return torch.stack([z0.reshape(-1), z1.reshape(-1)], dim=1)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Numbers worth following per epoch (e.g. a learned decoder σ), one value per seed; read once per epoch."""
        report = getattr(getattr(self, "likelihood", None), "diagnostics", None)
        return report() if report is not None else {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
