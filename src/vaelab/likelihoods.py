"""Decoder likelihoods p(x|z), each written once and used by training and evaluation alike.

PLACEHOLDER (lead): the full module (σ-VAE, continuous Bernoulli, Beta, ...) lands from its branch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vaelab.config import ConfigError, from_dict

LOG_2PI = math.log(2 * math.pi)


class Likelihood(nn.Module):
    name: ClassVar[str]
    params_per_pixel: ClassVar[int] = 1
    density: ClassVar[bool] = True

    @dataclass(frozen=True)
    class Config:
        pass

    def __init__(self, cfg=None):
        super().__init__()
        self.cfg = cfg if cfg is not None else self.Config()


class Gaussian(Likelihood):
    """N(x; sigmoid(out), σ² I), fixed σ."""

    name = "gaussian"

    @dataclass(frozen=True)
    class Config:
        sigma: float = 1.0

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        s = self.cfg.sigma
        return -(0.5 * (x - torch.sigmoid(out)).pow(2) / s**2 + math.log(s) + 0.5 * LOG_2PI).sum(-1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


class Bernoulli(Likelihood):
    name = "bernoulli"
    density = False

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none").sum(-1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


LIKELIHOODS: dict[str, type[Likelihood]] = {cls.name: cls for cls in (Gaussian, Bernoulli)}


def build(spec: dict, path: str = "likelihood") -> Likelihood:
    if not isinstance(spec, dict):
        raise ConfigError(f"{path} = {spec!r}: expected a mapping with a `name`, e.g. {{name: bernoulli}}")
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in LIKELIHOODS:
        raise ConfigError(f"{path}.name = {name!r}: expected one of {sorted(LIKELIHOODS)}")
    cls = LIKELIHOODS[name]
    return cls(from_dict(cls.Config, spec, path))
