"""Two amortised posterior estimators for the SBI tasks of :mod:`vaelab.sbi.tasks`, both trained through the
project's one training loop (:func:`vaelab.training.loop.fit`): the comparison of the issue "SBI and black-box VI with a
CVAE" (a CVAE from simulations, black-box VI from the likelihood, later sbi's NPE).

* :class:`PosteriorCVAE`: the layout of Gabbard et al., "Bayesian parameter estimation using conditional
  variational autoencoders for gravitational-wave astronomy" (Nature Physics 2022, "VItamin"): a recognition
  network q(z | θ, x), a conditional prior network r(z | x) and a decoder p(θ | z, x), a diagonal Gaussian with
  learned mean and log-variance. Trained on simulated pairs (θ, x) by the conditional ELBO
  log p(θ | x) ≥ E_q[log p(θ | z, x)] − KL(q(z | θ, x) ‖ r(z | x)); posterior draws are z ~ r(z | x_o), then
  θ ~ p(θ | z, x_o). Needs simulations only, no likelihood.
* :class:`AmortizedPosterior` + :class:`BlackBoxVI`: q(θ | x), a mixture of K diagonal Gaussians whose weights,
  means and log-variances an MLP computes from x, trained without any posterior sample by maximising the ELBO
  E_q[log p(x | θ) + log p(θ) − log q(θ | x)] over simulated x with the task's likelihood. The expectation over
  the mixture is stratified, Σ_k π_k E_ε[f(θ_k(ε))] with reparameterised θ_k(ε) per component, so the weights
  enter exactly and nothing discrete is sampled.

**Spaces.** θ is modelled in a space :class:`ThetaSpace` shared by both estimators: for a uniform-box prior
optionally u = logit((θ − low) / (high − low)), unbounded, so every sample maps back inside the prior's box
(and, for BBVI, log p(θ) stays finite); then standardised by the training set's mean and std (buffers). x is
standardised likewise (SLCP's x has a large scale). Every log-density here is in nats of θ itself: the
log-determinants of both maps are included, so the numbers of the two spaces compare.

**Noise.** Training noise comes from the loop's :class:`vaelab.core.streams.Streams` through
:func:`vaelab.core.streams.normal`, sampling noise from an explicit ``torch.Generator``: runs are seeded, resumable
and samples repeat for the same seed. One seed per network (no stacked seeds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaelab.core import streams
from vaelab.core.config import TrainConfig
from vaelab.core.distributions import LOG_2PI, DiagonalGaussian
from vaelab.core.errors import ConfigError
from vaelab.models.layers import mlp
from vaelab.sbi.tasks import Bounds, SBITask
from vaelab.training.loop import Epoch, fit

# θ on the prior box's edge (prior draws can hit it in float32) would map to ±inf; clamp its unit coordinate.
BOX_EPS = 1e-6
# The defaults measured by benchmarks/posterior_nets.py (C2ST on gaussian_linear and two_moons, <= ~20 s a run).
DEFAULT_HIDDEN: tuple[int, ...] = (64, 64)
DEFAULT_LATENT = 4
DEFAULT_COMPONENTS = 8
# Standard deviations below this (a constant coordinate) would divide by ~0 when standardising.
MIN_STD = 1e-6


def _check_pairs(theta: Tensor | None, x: Tensor) -> None:
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"expected x of shape [n >= 2, dim_x], got {tuple(x.shape)}")
    if theta is not None and (theta.ndim != 2 or len(theta) != len(x)):
        raise ValueError(f"expected theta [n, dim_theta] with the n = {len(x)} rows of x, got {tuple(theta.shape)}")


class ThetaSpace(nn.Module):
    """θ ↔ v, the space the estimators model θ in: optionally the box's logit u, then standardised.

    ``to_v(θ)`` returns (v, log|det ∂v/∂θ|), so a density over v becomes one over θ by adding the log-det;
    ``to_theta(v)`` returns (θ, log|det ∂v/∂θ|) at the θ it maps to, computed from v (stable at the box's edge).
    """

    def __init__(self, dim: int, bounds: Bounds | None = None):
        super().__init__()
        self.boxed = bounds is not None
        low, high = bounds if bounds is not None else (torch.zeros(dim), torch.ones(dim))
        if low.shape != (dim,) or high.shape != (dim,) or not bool((high > low).all()):
            raise ValueError(f"prior box: expected low < high, both of shape [{dim}], got {low} and {high}")
        self.register_buffer("low", low.float().clone())
        self.register_buffer("width", (high - low).float().clone())
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def _unbounded(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """(u, log|du/dθ|): the box's logit, or θ itself without a box."""
        if not self.boxed:
            return theta, theta.new_zeros(theta.shape[:-1])
        s = ((theta - self.low) / self.width).clamp(BOX_EPS, 1 - BOX_EPS)
        u = torch.logit(s)
        return u, self._box_log_det(u)

    def _box_log_det(self, u: Tensor) -> Tensor:
        # du/dθ = 1 / (width · s (1 − s)), and −log(s (1 − s)) = softplus(u) + softplus(−u): no 0 · ∞ at the edge.
        return (F.softplus(u) + F.softplus(-u) - self.width.log()).sum(-1)

    @torch.no_grad()
    def fit_scale(self, theta: Tensor) -> None:
        """Set the standardisation from training θ (in the unbounded space)."""
        u, _ = self._unbounded(theta)
        self.mean.copy_(u.mean(0))
        self.std.copy_(u.std(0).clamp_min(MIN_STD))

    def to_v(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        u, log_det = self._unbounded(theta)
        return (u - self.mean) / self.std, log_det - self.std.log().sum()

    def to_theta(self, v: Tensor) -> tuple[Tensor, Tensor]:
        u = self.mean + self.std * v
        log_det = -self.std.log().sum()
        if not self.boxed:
            return u, log_det + u.new_zeros(u.shape[:-1])
        return self.low + self.width * torch.sigmoid(u), log_det + self._box_log_det(u)


class Standardizer(nn.Module):
    """x ↦ (x − mean) / std with the training set's mean and std (buffers, saved with the network)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit_scale(self, x: Tensor) -> None:
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(MIN_STD))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _gaussian(out: Tensor) -> DiagonalGaussian:
    mean, logvar = out.chunk(2, dim=-1)
    return DiagonalGaussian(mean, logvar)


def _observation(x_o: Tensor, dim_x: int) -> Tensor:
    """``x_o`` ([dim_x] or [1, dim_x], as sbibm's files) as one row [1, dim_x]."""
    flat = torch.as_tensor(x_o, dtype=torch.float32).reshape(1, -1)
    if flat.shape[1] != dim_x:
        raise ValueError(f"expected an observation of {dim_x} values, got shape {tuple(torch.as_tensor(x_o).shape)}")
    return flat


# --- the CVAE -------------------------------------------------------------------------------------------------

class PosteriorCVAE(nn.Module):
    """VItamin's CVAE: recognition q(z | θ, x), conditional prior r(z | x), decoder p(θ | z, x) (in v-space).

    ``box`` (with the prior's ``bounds``) models θ through the box's logit, so every sample lies in the box.
    ``iw_samples`` = K > 1 trains on the importance-weighted bound of Burda et al. (2016) with K draws of q
    instead of the ELBO (K = 1); ``recon`` and ``kl`` stay the ELBO's terms, averaged over the K draws.
    Build it with :meth:`from_data`, which sets the standardisations from the training pairs.

    Measured (benchmarks/posterior_nets.py, C2ST for sbibm observation 1, one seed): K = 5 helped in five of the
    six settings tried (two_moons 10^4: 0.740 -> 0.651, with the box 0.638 -> 0.566; two_moons 10^3: 0.732 ->
    0.718, with the box 0.937 -> 0.799; gaussian_linear 10^4: 0.589 -> 0.580; not gaussian_linear 10^3: 0.637 ->
    0.647), so it is kept; the default stays 1 (the plain ELBO of VItamin). The box helped at 10^4 simulations (0.740 -> 0.638; 0.651 -> 0.566 with K = 5) and
    hurt at 10^3 (0.732 -> 0.937; 0.718 -> 0.799), so it is an option, off by default.
    """

    def __init__(self, dim_theta: int, dim_x: int, hidden: Sequence[int], latent_dim: int,
                 bounds: Bounds | None = None, box: bool = False, iw_samples: int = 1):
        super().__init__()
        if box and bounds is None:
            raise ConfigError("PosteriorCVAE(box=True) needs the prior's box (bounds): the task's prior is not uniform")
        if iw_samples < 1:
            raise ConfigError(f"PosteriorCVAE: iw_samples = {iw_samples!r}, expected >= 1")
        self.dim_theta, self.dim_x, self.latent_dim, self.iw_samples = dim_theta, dim_x, latent_dim, iw_samples
        self.theta_space = ThetaSpace(dim_theta, bounds if box else None)
        self.x_scale = Standardizer(dim_x)
        self.recognition_net = mlp([dim_theta + dim_x, *hidden, 2 * latent_dim])
        self.prior_net = mlp([dim_x, *hidden, 2 * latent_dim])
        self.decoder_net = mlp([latent_dim + dim_x, *hidden, 2 * dim_theta])

    @classmethod
    def from_data(cls, theta: Tensor, x: Tensor, hidden: Sequence[int] = DEFAULT_HIDDEN,
                  latent_dim: int = DEFAULT_LATENT, bounds: Bounds | None = None, box: bool = False,
                  iw_samples: int = 1) -> "PosteriorCVAE":
        _check_pairs(theta, x)
        net = cls(theta.shape[1], x.shape[1], hidden, latent_dim, bounds, box, iw_samples)
        net.theta_space.fit_scale(theta)
        net.x_scale.fit_scale(x)
        return net

    def prior(self, xs: Tensor) -> DiagonalGaussian:
        return _gaussian(self.prior_net(xs))

    def posterior(self, v: Tensor, xs: Tensor) -> DiagonalGaussian:
        return _gaussian(self.recognition_net(torch.cat([v, xs], dim=-1)))

    def decoder(self, z: Tensor, xs: Tensor) -> DiagonalGaussian:
        """p(v | z, x): ``z`` [B, d] or [B, K, d] (x broadcast over the K draws)."""
        if z.dim() == 3:
            xs = xs[:, None].expand(-1, z.shape[1], -1)
        return _gaussian(self.decoder_net(torch.cat([z, xs], dim=-1)))

    def loss(self, theta: Tensor, x: Tensor, noise: streams.Source = None) -> dict[str, Tensor]:
        """The negative conditional ELBO (or IW bound), batch mean in nats of θ, and its two terms."""
        v, log_det = self.theta_space.to_v(theta)
        xs = self.x_scale(x)
        q, r = self.posterior(v, xs), self.prior(xs)
        if self.iw_samples == 1:
            log_p = self.decoder(q.rsample(generator=noise), xs).log_prob(v) + log_det
            recon, kl = -log_p.mean(), q.kl(r).mean()
            return {"loss": recon + kl, "recon": recon, "kl": kl}
        z = q.rsample(self.iw_samples, noise)                                         # [B, K, d]
        log_p = self.decoder(z, xs).log_prob(v[:, None]) + log_det[:, None]          # [B, K]
        log_w = log_p + r.log_prob(z) - q.log_prob(z)
        bound = torch.logsumexp(log_w, dim=1) - math.log(self.iw_samples)
        return {"loss": -bound.mean(), "recon": -log_p.mean(), "kl": q.kl(r).mean()}

    @torch.no_grad()
    def sample(self, x_o: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """[n, dim_theta] posterior draws for one observation: z ~ r(z | x_o), θ ~ p(θ | z, x_o)."""
        xs = self.x_scale(_observation(x_o, self.dim_x)).expand(n, -1)
        z = self.prior(xs).rsample(generator=generator)
        v = self.decoder(z, xs).rsample(generator=generator)
        return self.theta_space.to_theta(v)[0]


# --- black-box VI ---------------------------------------------------------------------------------------------

class AmortizedPosterior(nn.Module):
    """q(θ | x): a mixture of ``components`` diagonal Gaussians in v-space, weights, means and log-variances
    from an MLP of the standardised x; for a box prior v is the box's logit (standardised), so q lives inside
    the box and its log-density (:meth:`log_prob`) includes the transform's log-det."""

    def __init__(self, dim_theta: int, dim_x: int, hidden: Sequence[int], components: int,
                 bounds: Bounds | None = None):
        super().__init__()
        if components < 1:
            raise ConfigError(f"AmortizedPosterior: components = {components!r}, expected >= 1")
        self.dim_theta, self.dim_x, self.components = dim_theta, dim_x, components
        self.theta_space = ThetaSpace(dim_theta, bounds)
        self.x_scale = Standardizer(dim_x)
        self.net = mlp([dim_x, *hidden, components * (1 + 2 * dim_theta)])

    @classmethod
    def from_data(cls, theta: Tensor, x: Tensor, hidden: Sequence[int] = DEFAULT_HIDDEN,
                  components: int = DEFAULT_COMPONENTS, bounds: Bounds | None = None) -> "AmortizedPosterior":
        """Standardisations from simulated pairs: θ here are prior draws (their scale only), never posterior ones."""
        _check_pairs(theta, x)
        net = cls(theta.shape[1], x.shape[1], hidden, components, bounds)
        net.theta_space.fit_scale(theta)
        net.x_scale.fit_scale(x)
        return net

    def mixture(self, x: Tensor) -> tuple[Tensor, DiagonalGaussian]:
        """(log π [B, K], the K components in v-space with mean and logvar [B, K, dim_theta])."""
        out = self.net(self.x_scale(x))
        k, d = self.components, self.dim_theta
        logits, params = out[..., :k], out[..., k:].reshape(*out.shape[:-1], k, 2 * d)
        return torch.log_softmax(logits, dim=-1), _gaussian(params)

    @staticmethod
    def _mixture_log_prob(log_pi: Tensor, parts: DiagonalGaussian, v: Tensor) -> Tensor:
        """log Σ_k π_k N(v; μ_k, σ_k) for ``v`` [B, ..., d] against components [B, K, d] -> [B, ...]."""
        extra = v.dim() - 2  # sample axes between the batch and the coordinates
        shape = (v.shape[0], *([1] * extra), *parts.mean.shape[1:])
        mean, logvar = parts.mean.reshape(shape), parts.logvar.reshape(shape)
        log_n = -0.5 * ((v.unsqueeze(-2) - mean).pow(2) / logvar.exp() + logvar + LOG_2PI).sum(-1)
        return torch.logsumexp(log_pi.reshape(*shape[:-1]) + log_n, dim=-1)

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q(θ | x) in nats of θ: ``theta`` [B, d] or [B, S, d] with ``x`` [B, dim_x]."""
        v, log_det = self.theta_space.to_v(theta)
        log_pi, parts = self.mixture(x)
        return self._mixture_log_prob(log_pi, parts, v) + log_det

    def reparameterized(self, x: Tensor, samples: int, noise: streams.Source = None) -> tuple[Tensor, Tensor, Tensor]:
        """What :class:`BlackBoxVI` asks of q: reparameterised draws θ [B, M, d] with their weights [B, M] (summing to
        1 per x) and log q(θ | x) [B, M] in nats of θ. Here M = K·S: ``samples`` draws θ_k(ε) of every component k,
        weighted π_k / S (stratified over the components, so π enters exactly and nothing discrete is drawn)."""
        log_pi, parts = self.mixture(x)
        b, k, d = parts.mean.shape
        eps = streams.normal((b, k, samples, d), noise, parts.mean)
        v = (parts.mean[:, :, None] + parts.std[:, :, None] * eps).reshape(b, k * samples, d)
        theta, log_det = self.theta_space.to_theta(v)
        log_q = self._mixture_log_prob(log_pi, parts, v) + log_det
        weights = (log_pi.exp()[:, :, None] / samples).expand(b, k, samples).reshape(b, k * samples)
        return theta, weights, log_q

    @torch.no_grad()
    def sample(self, x_o: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """[n, dim_theta] draws of q(θ | x_o): a component by its weight, then its Gaussian."""
        log_pi, parts = self.mixture(_observation(x_o, self.dim_x))
        k = torch.multinomial(log_pi[0].exp(), n, replacement=True, generator=generator)
        chosen = DiagonalGaussian(parts.mean[0, k], parts.logvar[0, k])
        return self.theta_space.to_theta(chosen.rsample(generator=generator))[0]


class FlowPosterior(nn.Module):
    """q(θ | x): a neural spline flow (zuko's ``NSF``, autoregressive rational-quadratic splines; zuko comes with
    sbi) in v-space, conditioned on the standardised x: a family that can hold two moons' crescents, which a mixture
    of diagonal Gaussians covers badly (benchmarks/posterior_nets.py). For a box prior v is the box's logit, so q
    lives inside the box. zuko draws its base noise from torch's global generator: :meth:`sample` seeds it from
    ``generator`` inside a forked RNG state, so draws are reproducible and the caller's state is left alone."""

    def __init__(self, dim_theta: int, dim_x: int, hidden: Sequence[int], transforms: int = 3,
                 bounds: Bounds | None = None):
        super().__init__()
        import zuko

        if transforms < 1:
            raise ConfigError(f"FlowPosterior: transforms = {transforms!r}, expected >= 1")
        self.dim_theta, self.dim_x = dim_theta, dim_x
        self.theta_space = ThetaSpace(dim_theta, bounds)
        self.x_scale = Standardizer(dim_x)
        self.flow = zuko.flows.NSF(dim_theta, dim_x, transforms=transforms, hidden_features=tuple(hidden))

    @classmethod
    def from_data(cls, theta: Tensor, x: Tensor, hidden: Sequence[int] = DEFAULT_HIDDEN, transforms: int = 3,
                  bounds: Bounds | None = None) -> "FlowPosterior":
        """Standardisations from simulated pairs (θ: prior draws, for their scale only)."""
        _check_pairs(theta, x)
        net = cls(theta.shape[1], x.shape[1], hidden, transforms, bounds)
        net.theta_space.fit_scale(theta)
        net.x_scale.fit_scale(x)
        return net

    def reparameterized(self, x: Tensor, samples: int, noise: streams.Source = None) -> tuple[Tensor, Tensor, Tensor]:
        """As :meth:`AmortizedPosterior.reparameterized`, with M = ``samples`` equally weighted draws (zuko draws the
        base noise from torch's global generator, which the training loop seeds; ``noise`` is not used)."""
        v, log_qv = self.flow(self.x_scale(x)).rsample_and_log_prob((samples,))   # [S, B, d], [S, B]
        theta, log_det = self.theta_space.to_theta(v.transpose(0, 1))
        log_q = log_qv.transpose(0, 1) + log_det
        return theta, torch.full_like(log_q, 1.0 / samples), log_q

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q(θ | x) in nats of θ: ``theta`` [B, d] with ``x`` [B, dim_x]."""
        v, log_det = self.theta_space.to_v(theta)
        return self.flow(self.x_scale(x)).log_prob(v) + log_det

    @torch.no_grad()
    def sample(self, x_o: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """[n, dim_theta] draws of q(θ | x_o)."""
        seed = int(torch.randint(2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            v = self.flow(self.x_scale(_observation(x_o, self.dim_x))).sample((n,))[:, 0]
        return self.theta_space.to_theta(v)[0]


def prior_log_prob(task: SBITask, theta: Tensor) -> Tensor:
    """log p(θ); for a uniform box the constant inside it (θ from the box transform never leaves the closed box,
    where torch's Uniform would give −inf on the upper edge)."""
    bounds = task.prior_bounds
    if bounds is None:
        return task.prior.log_prob(theta)
    return (-(bounds.high - bounds.low).log().sum()).to(theta).expand(theta.shape[:-1])


class BlackBoxVI(nn.Module):
    """The negative ELBO of an amortised q(θ | x) over simulated x, from the task's likelihood.

    E_q[log p(x | θ) + log p(θ) − log q(θ | x)] over the reparameterised, weighted draws that q gives for each x
    (``reparameterized``: an :class:`AmortizedPosterior` stratifies over its components, a :class:`FlowPosterior`
    draws ``samples`` equally weighted). A task without a tractable likelihood fails at construction with the
    error its ``log_likelihood`` raises.
    """

    def __init__(self, task: SBITask, posterior: AmortizedPosterior | FlowPosterior, samples: int = 1):
        super().__init__()
        if samples < 1:
            raise ConfigError(f"BlackBoxVI: samples = {samples!r}, expected >= 1")
        if (posterior.dim_theta, posterior.dim_x) != (task.dim_theta, task.dim_x):
            raise ConfigError(f"BlackBoxVI: the posterior is for dim_theta {posterior.dim_theta}, dim_x "
                              f"{posterior.dim_x}; task {task.name!r} has {task.dim_theta} and {task.dim_x}")
        if posterior.theta_space.boxed != (task.prior_bounds is not None):
            raise ConfigError(f"BlackBoxVI: task {task.name!r} needs a posterior built with "
                              f"bounds={'task.prior_bounds' if task.prior_bounds is not None else 'None'}, so "
                              f"q's support is the prior's")
        # Fail now, not mid-training: one likelihood evaluation (θ = 0 lies in every task's prior support).
        task.log_likelihood(torch.zeros(1, task.dim_theta), torch.zeros(1, task.dim_x))
        self.task, self.posterior, self.samples = task, posterior, samples

    def loss(self, x: Tensor, noise: streams.Source = None) -> dict[str, Tensor]:
        """The negative ELBO (batch mean, nats), with its parts: ``nll`` = −E_q log p(x | θ) and
        ``kl`` = E_q[log q − log p(θ)] (q's KL to the prior)."""
        theta, weights, log_q = self.posterior.reparameterized(x, self.samples, noise)   # [B, M, d], [B, M], [B, M]
        log_lik = self.task.log_likelihood(theta, x[:, None])
        nll = -(weights * log_lik).sum(1).mean()
        kl = (weights * (log_q - prior_log_prob(self.task, theta))).sum(1).mean()
        return {"loss": nll + kl, "nll": nll, "kl": kl}


# --- training -------------------------------------------------------------------------------------------------

def simulations(task: SBITask, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` simulated pairs (θ ~ prior, x ~ p(x | θ)) of ``task``, float32, from one seeded generator."""
    if n < 2:
        raise ConfigError(f"simulations: n = {n!r}, expected >= 2 (the standardisations need a spread)")
    generator = torch.Generator().manual_seed(seed)
    theta = task.sample_prior(n, generator)
    return theta, task.simulate(theta, generator)


def fit_cvae(net: PosteriorCVAE, theta: Tensor, x: Tensor, cfg: TrainConfig, seed: int) -> list[Epoch]:
    """Train the CVAE on simulated pairs through the one loop (Adam, constant ``cfg.lr``); its history."""
    _check_pairs(theta, x)
    return fit(net, (theta.float(), x.float()), None, cfg, seed=seed, name="posterior cvae",
               lr_param="the CVAE's learning rate")


def fit_bbvi(vi: BlackBoxVI, x: Tensor, cfg: TrainConfig, seed: int) -> list[Epoch]:
    """Train ``vi.posterior`` on simulated x (no θ) through the one loop (Adam, constant ``cfg.lr``); its history."""
    _check_pairs(None, x)
    return fit(vi, (x.float(),), None, cfg, seed=seed, name="black-box vi", lr_param="the BBVI learning rate")
