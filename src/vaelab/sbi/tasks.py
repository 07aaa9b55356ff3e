"""Four tasks of the simulation-based inference benchmark, in plain torch: the problems a CVAE, black-box VI
and sbi's NPE are later compared on.

The tasks and their constants are those of Lueckmann et al., "Benchmarking Simulation-Based Inference"
(AISTATS 2021) as coded in sbibm 1.1.0 (``sbibm/tasks/<name>/task.py``): ``gaussian_linear`` (10-d θ and x),
``two_moons`` (2-d, a bimodal crescent posterior), ``gaussian_mixture`` (2-d) and ``slcp`` (5-d θ, 8-d x).
sbibm itself is not a dependency (its pins do not fit this project's torch); its published observations and
reference posterior samples are read from its wheel by :mod:`vaelab.sbi.sbibm_files`.

Conventions:

* Everything runs on the CPU and every random draw takes an explicit ``torch.Generator`` (pyro's global RNG,
  which sbibm uses, is never touched), so a seed alone fixes a simulation.
* dtype: float32 by default, as sbibm (torch's default dtype; sbibm's csv files are float32). ``simulate`` and
  ``log_likelihood`` compute in the dtype of ``theta``, so float64 in gives float64 out; ``sample_prior`` and
  ``reference_posterior`` return float32 unless asked for another ``dtype``.
* Shapes: ``theta`` is ``[n, dim_theta]``, ``x`` is ``[n, dim_x]`` (slcp: its 4 draws of a 2-d Gaussian
  flattened in draw order, as sbibm); ``log_likelihood`` broadcasts over the leading axes and returns ``[n]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal, Uniform

from vaelab.core.errors import ConfigError, NoReferencePosteriorError

LOG_2PI = math.log(2 * math.pi)
# Batches of the rejection samplers: large enough that a few rounds suffice at sbibm's acceptance rates.
REJECTION_BATCH = 100_000


class Bounds(NamedTuple):
    """The box of a uniform prior: ``low <= theta <= high`` per dimension."""

    low: Tensor
    high: Tensor


@dataclass(frozen=True)
class SBITask:
    """What every task offers; the subclasses below fill in the prior, the simulator and what is tractable."""

    name: str
    dim_theta: int
    dim_x: int

    # --- prior -------------------------------------------------------------------------------------------
    @property
    def prior(self) -> Distribution:
        """The prior as a ``torch.distributions`` object (event shape ``[dim_theta]``), for ``log_prob``."""
        raise NotImplementedError

    @property
    def prior_bounds(self) -> Bounds | None:
        """The prior's box where the prior is uniform, else None."""
        return None

    def sample_prior(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        """``n`` prior draws ``[n, dim_theta]`` from ``generator`` (``prior.sample`` cannot take a generator)."""
        raise NotImplementedError

    # --- simulator and likelihood -------------------------------------------------------------------------
    def simulate(self, theta: Tensor, generator: torch.Generator) -> Tensor:
        """One x per row of ``theta`` ``[n, dim_theta]`` -> ``[n, dim_x]``, the noise drawn from ``generator``."""
        raise NotImplementedError

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """log p(x | theta) as a density over x; broadcasts ``[..., dim_theta]`` with ``[..., dim_x]``."""
        raise NotImplementedError(f"task {self.name!r} has no tractable likelihood here")

    # --- reference posterior ------------------------------------------------------------------------------
    def reference_posterior(self, x_o: Tensor, n: int, generator: torch.Generator,
                            dtype: torch.dtype = torch.float32) -> Tensor:
        """``n`` exact draws ``[n, dim_theta]`` of p(theta | x_o); ``x_o`` is ``[dim_x]`` or ``[1, dim_x]``."""
        raise NoReferencePosteriorError(
            f"task {self.name!r} has no exact reference posterior sampler: use sbibm's published samples "
            f"(vaelab.sbi.sbibm_files.reference_samples({self.name!r}, k))")

    # --- shared checks ------------------------------------------------------------------------------------
    def _check_theta(self, theta: Tensor) -> None:
        if theta.ndim != 2 or theta.shape[1] != self.dim_theta:
            raise ValueError(f"{self.name}: expected theta of shape [n, {self.dim_theta}], got {tuple(theta.shape)}")

    def _observation(self, x_o: Tensor, dtype: torch.dtype) -> Tensor:
        """``x_o`` as a flat ``[dim_x]`` vector (sbibm's files hold it as one row)."""
        flat = torch.as_tensor(x_o).reshape(-1).to(dtype)
        if flat.numel() != self.dim_x:
            raise ValueError(f"{self.name}: expected an observation of {self.dim_x} values, got {tuple(x_o.shape)}")
        return flat


@dataclass(frozen=True)
class UniformBoxTask(SBITask):
    """A task whose prior is uniform on the box ``[-bound, bound]^dim_theta`` (all but gaussian_linear)."""

    bound: float = 1.0

    @property
    def prior(self) -> Distribution:
        low, high = self.prior_bounds
        return Independent(Uniform(low, high), 1)

    @property
    def prior_bounds(self) -> Bounds:
        return Bounds(torch.full((self.dim_theta,), -self.bound), torch.full((self.dim_theta,), self.bound))

    def sample_prior(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        u = torch.rand((n, self.dim_theta), generator=generator, dtype=dtype)
        return (2 * u - 1) * self.bound

    def inside_prior(self, theta: Tensor) -> Tensor:
        """``[n]`` bools: which rows lie in the prior's (closed) box, where the prior density is positive."""
        return (theta.abs() <= self.bound).all(dim=-1)

    def _reject_until(self, n: int, propose, dtype: torch.dtype) -> Tensor:
        """Draw batches from ``propose(batch)`` and keep the rows inside the prior until ``n`` are kept.

        This is sbibm's rejection step (it also drops exact duplicates, which continuous draws never give).
        """
        kept: list[Tensor] = []
        total = 0
        while total < n:
            batch = propose(max(REJECTION_BATCH, 2 * (n - total))).to(dtype)
            batch = batch[self.inside_prior(batch)]
            kept.append(batch)
            total += batch.shape[0]
        return torch.cat(kept)[:n]


@dataclass(frozen=True)
class GaussianLinear(SBITask):
    """θ ~ N(0, 0.1 I), x | θ ~ N(θ, 0.1 I), 10-d: a conjugate Gaussian, the posterior in closed form.

    sbibm's ``prior_scale`` and ``simulator_scale`` (0.1) are documented as standard deviations but used as
    variances (``precision_matrix = inverse(0.1 * I)``); its files follow the code, so this follows the code.
    """

    name: str = "gaussian_linear"
    dim_theta: int = 10
    dim_x: int = 10
    prior_variance: float = 0.1
    noise_variance: float = 0.1

    @property
    def prior(self) -> Distribution:
        return Independent(Normal(torch.zeros(self.dim_theta), torch.full((self.dim_theta,), self.prior_variance).sqrt()), 1)

    def sample_prior(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        return math.sqrt(self.prior_variance) * torch.randn((n, self.dim_theta), generator=generator, dtype=dtype)

    def simulate(self, theta: Tensor, generator: torch.Generator) -> Tensor:
        self._check_theta(theta)
        noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype)
        return theta + math.sqrt(self.noise_variance) * noise

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return _isotropic_normal_log_prob(x, theta, self.noise_variance)

    def posterior_moments(self, x_o: Tensor, dtype: torch.dtype = torch.float32) -> tuple[Tensor, float]:
        """The exact posterior N(mean, variance · I): precisions add, the mean is the precision-weighted x_o
        (the prior mean is 0). With sbibm's constants: variance 0.05, mean x_o / 2."""
        variance = 1.0 / (1.0 / self.prior_variance + 1.0 / self.noise_variance)
        return variance * self._observation(x_o, dtype) / self.noise_variance, variance

    def reference_posterior(self, x_o: Tensor, n: int, generator: torch.Generator,
                            dtype: torch.dtype = torch.float32) -> Tensor:
        mean, variance = self.posterior_moments(x_o, dtype)
        return mean + math.sqrt(variance) * torch.randn((n, self.dim_theta), generator=generator, dtype=dtype)


@dataclass(frozen=True)
class TwoMoons(UniformBoxTask):
    """θ ~ U([-1, 1]^2); x = p + (-|z0|, z1) with z = R(-π/4) θ (θ rotated by -45°) and p a noisy half circle:
    p = (r cos a + 0.25, r sin a), a ~ U(-π/2, π/2), r ~ N(0.1, 0.01²). The |z0| makes the posterior bimodal.
    """

    name: str = "two_moons"
    dim_theta: int = 2
    dim_x: int = 2
    bound: float = 1.0
    r_loc: float = 0.1
    r_scale: float = 0.01
    base_offset: float = 0.25

    @staticmethod
    def _rotate(theta: Tensor, angle: float) -> Tensor:
        c, s = math.cos(angle), math.sin(angle)
        return torch.stack((c * theta[..., 0] - s * theta[..., 1], s * theta[..., 0] + c * theta[..., 1]), dim=-1)

    def _shift(self, theta: Tensor) -> Tensor:
        """The θ-dependent part of x: (-|z0|, z1), z = θ rotated by -π/4 (sbibm's ``_map_fun``)."""
        z = self._rotate(theta, -math.pi / 4)
        return torch.stack((-z[..., 0].abs(), z[..., 1]), dim=-1)

    def _noise(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
        """``n`` draws of p, the half circle of radius r ~ N(0.1, 0.01²) centred at (0.25, 0)."""
        a = (torch.rand(n, generator=generator, dtype=dtype) - 0.5) * math.pi
        r = self.r_loc + self.r_scale * torch.randn(n, generator=generator, dtype=dtype)
        return torch.stack((r * torch.cos(a) + self.base_offset, r * torch.sin(a)), dim=-1)

    def simulate(self, theta: Tensor, generator: torch.Generator) -> Tensor:
        self._check_theta(theta)
        return self._noise(theta.shape[0], generator, theta.dtype) + self._shift(theta)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """The exact density of x given θ: p = x - shift(θ) has, in polar coordinates (ρ, a) around (0.25, 0),
        density N(r; 0.1, 0.01²) · 1/π · 1/ρ, where r = ρ on the right half plane and r = -ρ on the left
        (a point there needs a negative radius, 20 standard deviations away: density ~e^-200, not zero). At
        ρ = 0 itself (x - shift(θ) = (0.25, 0), a null set) the 1/ρ makes it +inf, as the true density is.

        sbibm's ``_likelihood`` keeps only the radial term log N(ρ; 0.1, 0.01²) and sets the left half plane to
        -inf: it drops the Jacobian 1/(πρ), so it is neither normalised over x nor the exact likelihood in θ
        (1/ρ varies by ~±10% across the moon). Its reference posteriors come from the exact inversion sampler,
        not from that function, so they are exact; this function is the normalised density.
        """
        p = x.to(theta.dtype) - self._shift(theta)
        u, v = p[..., 0] - self.base_offset, p[..., 1]
        rho = torch.sqrt(u**2 + v**2)
        r = torch.where(u >= 0, rho, -rho)
        return (-0.5 * ((r - self.r_loc) / self.r_scale) ** 2 - math.log(self.r_scale) - 0.5 * LOG_2PI
                - math.log(math.pi) - torch.log(rho))

    def reference_posterior(self, x_o: Tensor, n: int, generator: torch.Generator,
                            dtype: torch.dtype = torch.float32) -> Tensor:
        """Exact draws by inverting the simulator: draw the noise p, solve x_o = p + (-|z0|, z1) for z (|z0| =
        p0 - x_o0, z1 = x_o1 - p1), pick the sign of z0 with probability 1/2 each, rotate back by +π/4, and
        keep the draws inside the prior box. The map θ -> (-|z0|, z1) is a rotation and a fold, so its Jacobian
        is 1 and the kept draws follow the posterior exactly (uniform prior).

        A draw with p0 < x_o0 admits no θ (|z0| would be negative); it is rejected here. sbibm does not reject
        it (it flips the sign of a negative |z0| too), but p0 >= 0.25 always while every one of sbibm's ten
        observations has x_o0 < 0.25, so both samplers agree on its files.
        """
        obs = self._observation(x_o, dtype)

        def propose(batch: int) -> Tensor:
            p = self._noise(batch, generator, dtype)
            z0_abs, z1 = p[:, 0] - obs[0], obs[1] - p[:, 1]
            sign = torch.where(torch.rand(batch, generator=generator, dtype=dtype) < 0.5, -1.0, 1.0).to(dtype)
            theta = self._rotate(torch.stack((sign * z0_abs, z1), dim=-1), math.pi / 4)
            return theta[z0_abs >= 0]

        return self._reject_until(n, propose, dtype)


@dataclass(frozen=True)
class GaussianMixture(UniformBoxTask):
    """θ ~ U([-10, 10]^2), x | θ ~ 0.5 N(θ, I) + 0.5 N(θ, 0.1² I): a broad and a narrow component, same mean."""

    name: str = "gaussian_mixture"
    dim_theta: int = 2
    dim_x: int = 2
    bound: float = 10.0
    scales: tuple[float, ...] = (1.0, 0.1)
    weights: tuple[float, ...] = (0.5, 0.5)

    def simulate(self, theta: Tensor, generator: torch.Generator) -> Tensor:
        self._check_theta(theta)
        component = torch.multinomial(torch.tensor(self.weights, dtype=torch.float64), theta.shape[0],
                                      replacement=True, generator=generator)
        scale = torch.tensor(self.scales, dtype=theta.dtype)[component].unsqueeze(1)
        return theta + scale * torch.randn(theta.shape, generator=generator, dtype=theta.dtype)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        x = x.to(theta.dtype)
        parts = [math.log(w) + _isotropic_normal_log_prob(x, theta, s**2) for w, s in zip(self.weights, self.scales)]
        return torch.logsumexp(torch.stack(parts), dim=0)

    def reference_posterior(self, x_o: Tensor, n: int, generator: torch.Generator,
                            dtype: torch.dtype = torch.float32) -> Tensor:
        """The likelihood is symmetric in x and θ and each component integrates to 1 over θ, so under the flat
        prior the posterior is the same mixture centred at x_o, truncated to the prior box (sbibm's sampler)."""
        obs = self._observation(x_o, dtype)
        return self._reject_until(n, lambda batch: self.simulate(obs.expand(batch, -1), generator), dtype)


@dataclass(frozen=True)
class SLCP(UniformBoxTask):
    """Simple likelihood, complex posterior: θ ~ U([-3, 3]^5); x is 4 iid draws of a 2-d Gaussian with mean
    (θ0, θ1), standard deviations s1 = θ2², s2 = θ3², correlation tanh(θ4), flattened to 8 values.

    sbibm adds 1e-6 to the covariance's diagonal ("to ensure PSD"); so does this. Its posterior has no exact
    sampler: sbibm's reference samples come from SIR, a flow proposal and rejection sampling (no None here:
    ``reference_posterior`` raises :class:`NoReferencePosteriorError` pointing to the published files).
    """

    name: str = "slcp"
    dim_theta: int = 5
    dim_x: int = 8
    bound: float = 3.0
    num_draws: int = 4
    diagonal_eps: float = 1e-6

    def _gaussian(self, theta: Tensor) -> MultivariateNormal:
        """The 2-d Gaussian each of the draws comes from, batched over θ's leading axes."""
        s1, s2, rho = theta[..., 2] ** 2, theta[..., 3] ** 2, torch.tanh(theta[..., 4])
        cov = torch.stack((torch.stack((s1**2 + self.diagonal_eps, rho * s1 * s2), -1),
                           torch.stack((rho * s1 * s2, s2**2 + self.diagonal_eps), -1)), -2)
        return MultivariateNormal(theta[..., :2], covariance_matrix=cov, validate_args=False)

    def simulate(self, theta: Tensor, generator: torch.Generator) -> Tensor:
        self._check_theta(theta)
        gaussian = self._gaussian(theta)
        eps = torch.randn((theta.shape[0], self.num_draws, 2), generator=generator, dtype=theta.dtype)
        draws = gaussian.loc.unsqueeze(1) + (gaussian.scale_tril.unsqueeze(1) @ eps.unsqueeze(-1)).squeeze(-1)
        return draws.reshape(theta.shape[0], self.dim_x)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        draws = x.to(theta.dtype).reshape(*x.shape[:-1], self.num_draws, 2)
        gaussian = self._gaussian(theta.unsqueeze(-2))  # one Gaussian per θ, broadcast over the 4 draws
        return gaussian.log_prob(draws).sum(-1)


def _isotropic_normal_log_prob(x: Tensor, mean: Tensor, variance: float) -> Tensor:
    """log N(x; mean, variance · I), summed over the last axis."""
    d = x.shape[-1]
    x = x.to(mean.dtype)
    return -0.5 * (((x - mean) ** 2).sum(-1) / variance + d * (LOG_2PI + math.log(variance)))


TASKS: dict[str, SBITask] = {
    "gaussian_linear": GaussianLinear(),
    "two_moons": TwoMoons(),
    "gaussian_mixture": GaussianMixture(),
    "slcp": SLCP(),
}


def get_task(name: str) -> SBITask:
    """The task called ``name``; a ConfigError lists the known names for any other."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown SBI task {name!r}: expected one of {', '.join(sorted(TASKS))}") from None
