"""Decoder likelihoods p(x | z), each written once and used by training and evaluation alike.

A likelihood turns the decoder's raw output ``out`` ([..., params_per_pixel · 784]) into a distribution over an
image's 784 pixels. Every ``log_prob`` is a normalised log-density (or log-mass, for the Bernoulli) summed
over pixels: nats per image, with every constant included, so the training loss −log_prob is the reported
number and the same value the evaluation uses. ``log_prob_pairs`` is the fast path for the quadrature and the
importance-weighted bounds: every likelihood here is linear in fixed features of x, so all (image, latent
point) pairs are one matrix product (tests pin it to ``log_prob``).

The likelihoods (params.yaml: ``likelihood: {name: ..., <its settings>}``):

- ``gaussian``: N(x; sigmoid(out), σ²) with a fixed σ (the post's "MSE" VAE has σ = 1);
- ``gaussian_learned``: one shared σ learned with the decoder (Rybkin, Daniilidis & Levine, "Simple and
  Effective VAE Training with Calibrated Decoders", ICML 2021, the σ-VAE);
- ``gaussian_optimal``: the same paper's analytic σ*² = the batch's mean squared error;
- ``continuous_bernoulli``: Loaiza-Ganem & Cunningham, "The continuous Bernoulli", NeurIPS 2019;
- ``beta``: Beta(α, β) per pixel (needs pixels strictly inside (0, 1): dequantised data);
- ``bernoulli``: the post's "BCE" VAE; a probability mass on {0, 1}, not a density on grey pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vaelab.core.config import from_dict
from vaelab.core.distributions import LOG_2PI
from vaelab.core.errors import ConfigError
from vaelab.core.stacking import per_seed

# Logits |l| below this use the Taylor series of the continuous Bernoulli's normaliser and mean: their closed
# forms are 0/0 at λ = ½ and cancel badly near it in float32; the first omitted term is < 1e-8 at |l| = 0.2.
CB_TAYLOR = 0.2


def soft_clip_min(log_sigma: torch.Tensor, low: float) -> torch.Tensor:
    """A smooth lower bound on log σ: low + softplus(log σ − low), as the σ-VAE code does (keeps σ away from 0)."""
    return low + F.softplus(log_sigma - low)


class Likelihood(nn.Module):
    """Base class: see the module docstring. ``open_interval``: needs x strictly inside (0, 1). ``fixed_scale``:
    a Gaussian whose σ is set by hand, not fitted (the post's complaint)."""

    name: ClassVar[str]
    fixed_scale: ClassVar[bool] = False
    params_per_pixel: ClassVar[int] = 1
    density: ClassVar[bool] = True
    open_interval: ClassVar[bool] = False

    @dataclass(frozen=True)
    class Config:
        pass

    def __init__(self, cfg=None, stack: int = 1):
        super().__init__()
        self.cfg = cfg if cfg is not None else self.Config()
        self.stack = stack  # seeds side by side: a learned parameter or a buffer is [stack]

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_prob_pairs(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """[B, M]: log p(x_b | out_m) for x [B, 784] and out [M, P·784], without a [B, M, 784] tensor."""
        raise NotImplementedError

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Numbers worth following per epoch (e.g. a learned σ), one value per seed (read once per epoch)."""
        return {}


class _GaussianBase(Likelihood):
    """N(x; μ, σ² I) with μ = sigmoid(out) and one σ shared by all pixels (subclasses say which σ):
    −log p = Σ_d [(x_d − μ_d)² / (2σ²) + log σ + ½ log 2π] (Rybkin et al. 2021, eq. 2), summed, never averaged."""

    def log_sigma(self, mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log σ per seed ([stack], or 0-d when fixed); ``mean`` and ``x`` are None outside training."""
        raise NotImplementedError

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mean = torch.sigmoid(out)
        log_sigma = per_seed(self.log_sigma(mean, x), mean)
        return -(0.5 * (x - mean).pow(2) * torch.exp(-2 * log_sigma) + log_sigma + 0.5 * LOG_2PI).sum(-1)

    def log_prob_pairs(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # −|x − m|²/(2σ²) = (x·m − ½|m|² − ½|x|²)/σ²: one matrix product for all pairs.
        mean = torch.sigmoid(out)
        log_sigma = self.log_sigma(None, None).reshape(())  # one seed: evaluation
        d = x.shape[-1]
        quad = x @ mean.T - 0.5 * mean.pow(2).sum(-1) - 0.5 * x.pow(2).sum(-1, keepdim=True)
        return quad * torch.exp(-2 * log_sigma) - d * (log_sigma + 0.5 * LOG_2PI)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {"sigma": self.log_sigma(None, None).detach().exp().expand(self.stack)}


class Gaussian(_GaussianBase):
    """Fixed σ (the post's "MSE" VAE: σ = 1, so −log p = ½ squared error + 784 · ½ log 2π)."""

    name = "gaussian"
    fixed_scale = True

    @dataclass(frozen=True)
    class Config:
        sigma: float = field(default=1.0, metadata={"check": (lambda v: v > 0), "expect": "> 0"})

    def log_sigma(self, mean, x) -> torch.Tensor:
        return torch.tensor(math.log(self.cfg.sigma))


class GaussianLearned(_GaussianBase):
    """One shared σ, a parameter learned with the decoder (the σ-VAE; Rybkin et al. 2021, sec. 3)."""

    name = "gaussian_learned"

    @dataclass(frozen=True)
    class Config:
        min_log_sigma: float = -6.0   # soft lower clip of log σ

    def __init__(self, cfg=None, stack: int = 1):
        super().__init__(cfg, stack)
        self.raw_log_sigma = nn.Parameter(torch.zeros(stack))

    def log_sigma(self, mean, x) -> torch.Tensor:
        return soft_clip_min(self.raw_log_sigma, self.cfg.min_log_sigma)


class GaussianOptimal(_GaussianBase):
    """σ*² = the mean squared error of the batch, the σ that maximises the batch's likelihood in closed form
    (Rybkin et al. 2021, sec. 4, "optimal σ"). Training uses the batch's σ*; a running average of it (a buffer,
    updated deterministically) is the fixed σ of evaluation, so test likelihoods are a proper density."""

    name = "gaussian_optimal"

    @dataclass(frozen=True)
    class Config:
        min_log_sigma: float = -6.0
        momentum: float = field(default=0.01, metadata={"check": (lambda v: 0 < v <= 1), "expect": "in (0, 1]"})

    def __init__(self, cfg=None, stack: int = 1):
        super().__init__(cfg, stack)
        self.register_buffer("running_log_sigma", torch.zeros(stack))

    def log_sigma(self, mean, x) -> torch.Tensor:
        if not self.training or mean is None:
            return self.running_log_sigma
        # Detached: at the optimum ∂ log p / ∂σ = 0, so the gradient through σ* is zero anyway.
        # Each seed's own batch: [S, B, 784] -> [S]; one seed [B, 784] -> a 0-d tensor.
        per_batch = (x - mean).pow(2).mean(dim=(-2, -1)) if self.stack > 1 else (x - mean).pow(2).mean()
        optimal = soft_clip_min(0.5 * per_batch.detach().log(), self.cfg.min_log_sigma)
        with torch.no_grad():
            self.running_log_sigma.lerp_(optimal, self.cfg.momentum)
        return optimal


def _cb_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(λ) = log(2 artanh(1 − 2λ) / (1 − 2λ)), λ = sigmoid(logits) (Loaiza-Ganem & Cunningham 2019, eq. 7).

    With 1 − 2λ = −tanh(l/2), artanh(1 − 2λ) = −l/2, so C = l / tanh(l/2): exact and stable from the logits l.
    Near λ = ½ (l = 0) its Taylor series: C = 2 (1 + l²/12 − l⁴/720 + O(l⁶)).
    """
    small = logits.abs() < CB_TAYLOR
    safe = torch.where(small, torch.ones_like(logits), logits)
    exact = torch.log(safe / torch.tanh(safe / 2))
    l2 = logits.pow(2)
    taylor = math.log(2.0) + torch.log1p(l2 / 12 - l2.pow(2) / 720)
    return torch.where(small, taylor, exact)


class ContinuousBernoulli(Likelihood):
    """p(x|λ) = C(λ) λ^x (1 − λ)^(1−x) on [0, 1] (Loaiza-Ganem & Cunningham 2019, eq. 6), λ = sigmoid(out)."""

    name = "continuous_bernoulli"

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # x log λ + (1 − x) log(1 − λ) = x · out − softplus(out)
        return (x * out - F.softplus(out) + _cb_log_norm(out)).sum(-1)

    def log_prob_pairs(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x @ out.T + (_cb_log_norm(out) - F.softplus(out)).sum(-1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        """E[x] = λ/(2λ − 1) + 1/(2 artanh(1 − 2λ)) (eq. 8); in logits: 1/(1 − e^−l) − 1/l, near 0: ½ + l/12."""
        small = out.abs() < CB_TAYLOR
        safe = torch.where(small, torch.ones_like(out), out)
        exact = -1 / torch.expm1(-safe) - 1 / safe
        return torch.where(small, 0.5 + out / 12 - out.pow(3) / 720, exact)


class Beta(Likelihood):
    """Beta(x; α, β) per pixel, α = softplus(out[:784]), β = softplus(out[784:]) (+ 1e-4 so both stay > 0):
    log p = Σ [(α − 1) log x + (β − 1) log(1 − x) − log B(α, β)]. Defined on (0, 1) only: MNIST's exact 0s and
    1s need dequantised data (``data: dequantized``), never a clip that would change the likelihood."""

    name = "beta"
    params_per_pixel = 2
    open_interval = True
    EPS: ClassVar[float] = 1e-4

    def _ab(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = out.chunk(2, dim=-1)
        return F.softplus(a) + self.EPS, F.softplus(b) + self.EPS

    @staticmethod
    def _log_beta_fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)

    @staticmethod
    def check(x: torch.Tensor) -> None:
        """Raise if any pixel is 0 or 1 (a host sync: for tests and one-off checks, not the training loop)."""
        if bool(((x <= 0) | (x >= 1)).any()):
            raise ValueError("beta likelihood: pixels must lie strictly inside (0, 1); train and evaluate it on "
                             "dequantised data (`data: dequantized`)")

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        a, b = self._ab(out)
        return ((a - 1) * torch.log(x) + (b - 1) * torch.log1p(-x) - self._log_beta_fn(a, b)).sum(-1)

    def log_prob_pairs(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        a, b = self._ab(out)
        lx, l1x = torch.log(x), torch.log1p(-x)
        return lx @ (a - 1).T + l1x @ (b - 1).T - self._log_beta_fn(a, b).sum(-1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        a, b = self._ab(out)
        return a / (a + b)


class Bernoulli(Likelihood):
    """p(x|p) = Π p^x (1 − p)^(1−x), p = sigmoid(out): the post's "BCE" VAE. A mass on {0, 1}: on grey pixels
    it is the binary cross-entropy the post trains with, not a density (it never enters the bits/dim track)."""

    name = "bernoulli"
    density = False

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # x log p + (1 − x) log(1 − p) = x · out − softplus(out), stable for any logits
        return (x * out - F.softplus(out)).sum(-1)

    def log_prob_pairs(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x @ out.T - F.softplus(out).sum(-1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


# The registry: one line per likelihood.
LIKELIHOODS: dict[str, type[Likelihood]] = {cls.name: cls for cls in (
    Gaussian, GaussianLearned, GaussianOptimal, ContinuousBernoulli, Beta, Bernoulli)}


def build(spec: dict, path: str = "likelihood", stack: int = 1) -> Likelihood:
    """The likelihood a params.yaml mapping describes, e.g. ``{name: gaussian, sigma: 1.0}``."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{path} = {spec!r}: expected a mapping with a `name`, e.g. {{name: bernoulli}}")
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in LIKELIHOODS:
        raise ConfigError(f"{path}.name = {name!r}: expected one of {sorted(LIKELIHOODS)}")
    cls = LIKELIHOODS[name]
    return cls(from_dict(cls.Config, spec, path), stack)


def bits_per_dim(nll_nats: float, dims: int = 784) -> float:
    """The discrete 8-bit NLL in bits per pixel from a continuous NLL (nats per image) of dequantised pixels
    x̃ = (k + u)/256 in [0, 1]: (NLL + dims · ln 256) / (dims · ln 2) (Theis et al. 2016; the uniform density
    scores exactly 8.00)."""
    return (nll_nats + dims * math.log(256)) / (dims * math.log(2))
