"""Marginal likelihoods of models with a 2-D latent: log p(x) by quadrature, bounds by importance sampling.

The evaluation's fair yardstick and the report's "Variational inference, seen" section. With a 2-D
latent, log p(x) = log ∫ p(x|z) p(z) dz can be computed to a small fraction of a nat by a grid sum, so the
ELBO's gap can be taken apart exactly (Kingma & Welling 2014, eq. 1; Cremer, Li & Duvenaud 2018):

    log p(x) − ELBO(q_encoder) = [log p(x) − ELBO(q*)]       approximation gap: the Gaussian family
                               + [ELBO(q*) − ELBO(q_encoder)]  amortisation gap: one encoder for all x

where ELBO(q) = log p(x) − KL(q(z|x) ‖ p(z|x)) and q* is the best Gaussian for one image, fitted alone.

Model-agnostic: every function receives callables (the model's decoder, the likelihood's log densities),
never a model class, so a VAE, a CVAE (decoder closed over a label) or any likelihood works. The prior is
N(0, I) and q(z|x) = N(mu, diag exp(logvar)). Everything stays on the device of the inputs.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import Tensor

from vaelab.config import ConfigError
from vaelab.distributions import DiagonalGaussian, standard_normal_log_prob

# z [N, d] -> decoder output [N, P*784] (the model's decoder, possibly closed over a label y for a CVAE).
Decode = Callable[[Tensor], Tensor]
# (out [M, P*784], x [B, 784]) -> [B, M]: log p(x_b | out_m) for all pairs, in nats (a matrix product).
LogLikPairs = Callable[[Tensor, Tensor], Tensor]
# (out [..., P*784], x [..., 784]) -> [...]: log p(x | out), broadcasting.
LogLik = Callable[[Tensor, Tensor], Tensor]

# Rows pushed through the decoder at once: fast matrix products, activations around 50 MB.
ROWS = 16_384
# A grid resolves a posterior when its spacing is at most RESOLUTION posterior standard deviations along
# every direction: the aliasing error of the rectangle rule on a Gaussian is then below 2·exp(−2π²) ≈ 5e-9.
RESOLUTION = 1.0
# A local grid covers a posterior when its mean ± COVER standard deviations lies inside the grid; the
# coarse box needs less (4.5 s.d.: 3e-6 of the mass beyond, per side), which spares a prior-wide posterior
# a local round.
COVER = 5.0
COARSE_COVER = 4.5
# Another local grid is laid on the coarse cells left over when they hold more than this share of p(x).
OTHER_MODE = 1e-3


def _check(cond: bool, name: str, value: object, expected: str) -> None:
    if not cond:
        raise ConfigError(f"{name} = {value!r}: expected {expected}")


def _check_batch(x: Tensor, mu: Tensor | None = None, logvar: Tensor | None = None, latent: int | None = None) -> None:
    _check(x.dim() == 2, "x.shape", tuple(x.shape), "[B, pixels]")
    for name, t in (("mu", mu), ("logvar", logvar)):
        if t is not None:
            want = f"[{x.shape[0]}, {latent if latent else 'd'}] (one row per image of x)"
            _check(t.dim() == 2 and t.shape[0] == x.shape[0] and (latent is None or t.shape[1] == latent),
                   f"{name}.shape", tuple(t.shape), want)
    if mu is not None and logvar is not None:
        _check(mu.shape == logvar.shape, "logvar.shape", tuple(logvar.shape), f"the shape of mu {tuple(mu.shape)}")


# --- 2x2 helpers (closed forms: faster and clearer than batched linalg calls on tiny matrices) -------------

def _lam_min(s: Tensor) -> Tensor:
    """Smallest eigenvalue of symmetric 2x2 matrices [..., 2, 2]."""
    a, b, c = s[..., 0, 0], s[..., 0, 1], s[..., 1, 1]
    return 0.5 * (a + c) - torch.sqrt((0.5 * (a - c)).pow(2) + b.pow(2))


def _chol(s: Tensor) -> Tensor:
    """Lower Cholesky factor of symmetric positive definite 2x2 matrices."""
    l11 = s[..., 0, 0].sqrt()
    l21 = s[..., 1, 0] / l11
    l22 = (s[..., 1, 1] - l21.pow(2)).clamp_min(0).sqrt()
    zero = torch.zeros_like(l11)
    return torch.stack([torch.stack([l11, zero], -1), torch.stack([l21, l22], -1)], -2)


def _moments(log_w: Tensor, pts: Tensor) -> tuple[Tensor, Tensor]:
    """Mean [b, 2] and covariance [b, 2, 2] of points pts ([m, 2] or [b, m, 2]) weighted by softmax(log_w [b, m])."""
    w = torch.softmax(log_w, dim=-1)
    mean = w @ pts if pts.dim() == 2 else torch.einsum("bm,bmi->bi", w, pts)
    d = pts - mean[:, None]
    return mean, torch.einsum("bm,bmi,bmj->bij", w, d, d)


# --- exact log p(x) by quadrature ---------------------------------------------------------------------------

class Quadrature(NamedTuple):
    log_px: Tensor     # [B] log p(x) in nats
    mean: Tensor       # [B, 2] mean of the posterior's main mode (the first local grid; all of it if none)
    cov: Tensor        # [B, 2, 2] its covariance
    outside: Tensor    # [B] share of p(x) counted on coarse cells outside every local grid (tails, small modes)
    modes: Tensor      # [B] local grids accepted: 0 (the coarse grid resolved the posterior), 1, or more modes
    rounds: Tensor     # [B] local grids evaluated in all
    converged: Tensor  # [B] bool: every accepted grid passed the resolution and coverage checks


class _Grids(NamedTuple):
    z0: Tensor      # [n0², 2] coarse points, z0[i*n0 + j] = (axis[i], axis[j])
    n0: int
    h0: float       # coarse spacing
    radius: float
    u: Tensor       # [n², 2] local grid in its own units
    h_u: float      # local spacing in those units
    box: float      # local half-width in those units
    rounds: int
    modes: int
    rows: int


def _local_log_joint(decode: Decode, log_lik: LogLik, x: Tensor, z: Tensor, rows: int) -> Tensor:
    """log p(x_b | z_bm) + log p(z_bm) for per-image points z [b, m, 2] -> [b, m], at most ``rows`` decoded at once."""
    b, m, d = z.shape
    per = max(1, rows // m)
    parts = []
    for s in range(0, b, per):
        zs = z[s:s + per]
        out = decode(zs.reshape(-1, d)).view(zs.shape[0], m, -1)
        parts.append(log_lik(out, x[s:s + per, None]) + standard_normal_log_prob(zs))
    return torch.cat(parts)


def _in_cells(z: Tensor, m: Tensor, c: Tensor, g: _Grids) -> Tensor:
    """Whether points z ([m, 2] or [k, m, 2]) lie in the cells of the local grids (centres m [k, 2], factors c [k, 2, 2])."""
    d = z - m[:, None]
    c = c[:, None]
    v1 = d[..., 0] / c[..., 0, 0]                                           # u = C⁻¹ (z − m), C lower triangular
    v2 = (d[..., 1] - c[..., 1, 0] * v1) / c[..., 1, 1]
    edge = g.box + g.h_u / 2
    return (v1.abs() <= edge) & (v2.abs() <= edge)


def _window(lj0: Tensor, g: _Grids) -> tuple[Tensor, Tensor, Tensor]:
    """Moments of the coarse posterior in the 9x9 cells around each image's maximum, and whether they resolve it."""
    w, n0 = 4, g.n0
    top = lj0.argmax(-1)
    lo_i = (top // n0 - w).clamp(0, n0 - 2 * w - 1)                         # shifted inward at the box's edge
    lo_j = (top % n0 - w).clamp(0, n0 - 2 * w - 1)
    off = torch.arange(2 * w + 1, device=lj0.device)
    win = ((lo_i[:, None, None] + off[:, None]) * n0 + lo_j[:, None, None] + off).reshape(len(lj0), -1)
    mean, cov = _moments(lj0.gather(1, win), g.z0[win])
    return mean, cov, _lam_min(cov) >= (RESOLUTION * g.h0) ** 2


def _refine(decode: Decode, log_lik: LogLik, x: Tensor, m: Tensor, sig: Tensor, taken: list[tuple[Tensor, Tensor]],
            g: _Grids) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Local rounds (step 2 of :func:`quadrature`) for images x, from centres m [k, 2] and covariances sig.

    Points in the cells of grids already ``taken`` for these images (list of (centres, factors)) are left
    out, so no region is summed twice. Returns the last grid's log-sum [k], moments, centre and factor,
    rounds used and whether it was accepted.
    """
    k = len(x)
    log_sum, mean = torch.empty(k, dtype=x.dtype, device=x.device), torch.empty_like(m)
    cov, cen, fac = torch.empty_like(sig), torch.empty_like(m), torch.empty_like(sig)
    used = torch.zeros(k, dtype=torch.long, device=x.device)
    active = torch.ones(k, dtype=torch.bool, device=x.device)
    log_cell = 2 * math.log(g.h_u)
    for _ in range(g.rounds):
        idx = active.nonzero().squeeze(1)                                   # one host sync per round
        if idx.numel() == 0:
            break
        c = _chol(sig[idx])
        z = m[idx, None] + torch.einsum("kij,mj->kmi", c, g.u)             # [k, n², 2]
        lj = _local_log_joint(decode, log_lik, x[idx], z, g.rows)
        for m_t, c_t in taken:
            lj = lj.masked_fill(_in_cells(z, m_t[idx], c_t[idx], g), -math.inf)
        mu_u, cov_u = _moments(lj, g.u)
        ok = ((_lam_min(cov_u) >= (RESOLUTION * g.h_u) ** 2)
              & (mu_u.abs() + COVER * cov_u.diagonal(dim1=-2, dim2=-1).sqrt() <= g.box).all(-1))
        log_sum[idx] = torch.logsumexp(lj, -1) + (c[:, 0, 0] * c[:, 1, 1]).log() + log_cell
        mean[idx] = m[idx] + torch.einsum("kij,kj->ki", c, mu_u)
        cov[idx] = c @ cov_u @ c.transpose(1, 2)
        cen[idx], fac[idx] = m[idx], c
        used[idx] += 1
        active[idx] = ~ok
        # Next round: the moments just measured, inflated by a third of a cell (a posterior narrower than
        # the spacing shows up as one point; its mode is within half a cell of it).
        m[idx], sig[idx] = mean[idx], cov[idx] + (g.h_u / 3) ** 2 * (c @ c.transpose(1, 2))
    return log_sum, mean, cov, cen, fac, used, ~active


@torch.no_grad()
def quadrature(decode: Decode, log_lik_pairs: LogLikPairs, log_lik: LogLik, x: Tensor, *,
               radius: float = 5.0, coarse: int = 256, local: int = 20, box: float = 6.0, rounds: int = 5,
               modes: int = 3, images: int = 128, rows: int = ROWS) -> Quadrature:
    """log p(x) = log ∫ p(x|z) N(z; 0, I) dz for a 2-D latent by grid sums (Kingma & Welling 2014, eq. 1).

    The rule: a rectangle (trapezoid) sum Σ_j f(z_j)·cell on a uniform grid converges exponentially for a
    smooth integrand that vanishes at the grid's edge (Trefethen & Weideman 2014, SIAM Rev. 56(3), §5): for
    a Gaussian of standard deviation σ along a grid axis of spacing h the relative error is about
    2·exp(−2π²σ²/h²), i.e. 5e-9 at h = σ and 1e-3 at h = 1.6σ. So all it takes is a grid fine *relative to
    the posterior* in every direction, and an affine grid z = m + C u (u uniform) with C Cᵀ following the
    posterior's covariance meets that with a few hundred points however narrow (σ ~ 0.001-1) or correlated
    the posterior is. The encoder is not used: the yardstick does not depend on q(z|x).

    1. Coarse grid, shared: ``coarse``² points on [−radius, radius]² (spacing h0 = 2·radius/(coarse−1),
       0.039 by default), decoded once for all images; log_lik_pairs gives every image's log joint in one
       matrix product. If the 9x9 cells around an image's maximum resolve its posterior (smallest s.d. ≥ h0)
       and mean ± 4.5 s.d. lies in the box, the coarse sum is the answer (wide posteriors, e.g. an untrained
       decoder). The prior has 1.1e-6 of its mass outside the default box.
    2. Otherwise local rounds: an affine grid of ``local``² points, u ∈ [−box, box]², z = m + C u with
       C Cᵀ = Σ, starting from the window's moments with Σ inflated by (h0/3)² I. A round is accepted when, in
       its own units, the posterior's smallest s.d. is at least the spacing h_u = 2·box/(local−1) (resolved)
       and mean ± 5 s.d. lies in [−box, box] (covered); otherwise the next round starts from this round's
       moments. A round refines the spacing about fivefold: σ = 0.01 needs one round, σ = 0.001 two or three.
    3. Combination without double counting: p(x) = Σ_grids Σ_points f·|det C|·h_u² + Σ_{coarse points in no
       local grid's cells} f·h0². The posterior density at a local grid's edge (≥ 5 s.d. out) is ~e^-12.5 of
       its peak, so the strip where the coarse and local tilings disagree carries a negligible mass.
    4. Other modes: if the coarse cells outside the local grids still hold more than 1e-3 of p(x) and the
       window around their maximum is not resolved, that mode gets its own local grid (steps 2-3, leaving
       out points already in an earlier grid), up to ``modes`` grids in all.

    Cost: coarse² decoded rows once, local² rows per image, mode and round, and [images, coarse²] log joints
    at once (33 MB by default). Limitation: a mode narrower than about h0/6 can fall between coarse points
    and go unseen unless it is the coarse maximum; an IWAE bound above log p(x) by more than its noise
    would reveal it.
    """
    _check_batch(x)
    _check(radius > 0, "radius", radius, "> 0")
    _check(isinstance(coarse, int) and coarse >= 16, "coarse", coarse, "an integer >= 16 (points per axis)")
    _check(isinstance(local, int) and local >= 8, "local", local, "an integer >= 8 (points per axis)")
    _check(box >= COVER + 0.5, "box", box, f">= {COVER + 0.5} (the local grid's half-width in posterior s.d.)")
    _check(isinstance(rounds, int) and rounds >= 1, "rounds", rounds, "an integer >= 1")
    _check(isinstance(modes, int) and modes >= 1, "modes", modes, "an integer >= 1")
    dev, dt = x.device, x.dtype
    axis = torch.linspace(-radius, radius, coarse, device=dev, dtype=dt)
    u_axis = torch.linspace(-box, box, local, device=dev, dtype=dt)
    g = _Grids(torch.cartesian_prod(axis, axis), coarse, 2 * radius / (coarse - 1), radius,
               torch.cartesian_prod(u_axis, u_axis), 2 * box / (local - 1), box, rounds, modes, rows)
    out0 = torch.cat([decode(g.z0[s:s + rows]) for s in range(0, len(g.z0), rows)])
    prior0 = standard_normal_log_prob(g.z0)
    results = [_quadrature_chunk(decode, log_lik, x[s:s + images], log_lik_pairs(out0, x[s:s + images]) + prior0, g)
               for s in range(0, len(x), images)]
    return Quadrature(*(torch.cat(parts) for parts in zip(*results)))


def _quadrature_chunk(decode: Decode, log_lik: LogLik, x: Tensor, lj0: Tensor, g: _Grids) -> Quadrature:
    """Steps 1-4 of :func:`quadrature` for one chunk of images; lj0 [b, n0²] is their coarse log joint."""
    b, dev = len(x), x.device
    log_h0 = 2 * math.log(g.h0)
    mean, cov = _moments(lj0, g.z0)
    win_mean, win_cov, resolved = _window(lj0, g)
    covered = (mean.abs() + COARSE_COVER * cov.diagonal(dim1=-2, dim2=-1).sqrt() <= g.radius).all(-1)
    need = ~(resolved & covered)
    # A resolved (wide) posterior starts from its global moments; an unresolved one from its window's.
    start_m = torch.where(resolved[:, None], mean, win_mean)
    start_s = torch.where(resolved[:, None, None], cov, win_cov)
    eye = torch.eye(2, device=dev, dtype=x.dtype)
    parts = []                                                              # log-sums of the local grids, [b] each
    taken: list[tuple[Tensor, Tensor]] = []                                 # their centres and factors
    excluded = torch.zeros_like(lj0, dtype=torch.bool)                      # coarse points inside a local grid
    modes = torch.zeros(b, dtype=torch.long, device=dev)
    rounds = torch.zeros_like(modes)
    converged = torch.ones(b, dtype=torch.bool, device=dev)
    for k in range(g.modes):
        idx = need.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        log_sum, m_k, cov_k, cen, fac, used, ok = _refine(
            decode, log_lik, x[idx], start_m[idx].clone(), start_s[idx] + (g.h0 / 3) ** 2 * eye,
            [(m_t[idx], c_t[idx]) for m_t, c_t in taken], g)
        if k == 0:
            mean[idx], cov[idx] = m_k, cov_k
        full = torch.full((b,), -math.inf, dtype=x.dtype, device=dev)
        parts.append(full.index_put((idx,), log_sum))
        # Images without this grid get a far-away unit cell that contains nothing.
        cen_all = torch.full((b, 2), 1e9, dtype=x.dtype, device=dev).index_put((idx,), cen)
        fac_all = eye.expand(b, 2, 2).clone().index_put((idx,), fac)
        taken.append((cen_all, fac_all))
        excluded[idx] |= _in_cells(g.z0, cen, fac, g)
        modes[idx] += 1
        rounds[idx] += used
        converged[idx] &= ok
        # Another mode? Only where the coarse cells left hold a real share of p(x), unresolved.
        rest = lj0[idx].masked_fill(excluded[idx], -math.inf)
        log_rest = torch.logsumexp(rest, -1) + log_h0
        share = (log_rest - torch.logsumexp(torch.stack([p[idx] for p in parts] + [log_rest]), 0)).exp()
        start_m[idx], start_s[idx], res_k = _window(rest, g)
        need = torch.zeros_like(need).index_put((idx,), (share > OTHER_MODE) & ~res_k)
    log_rest = torch.logsumexp(lj0.masked_fill(excluded, -math.inf), -1) + log_h0
    log_px = torch.logsumexp(torch.stack(parts + [log_rest]), 0)
    outside = torch.where(modes > 0, (log_rest - log_px).exp(), torch.zeros_like(log_px))
    return Quadrature(log_px, mean, cov, outside, modes, rounds, converged)


def log_marginal_quadrature(decode: Decode, log_lik_pairs: LogLikPairs, log_lik: LogLik, x: Tensor,
                            **grid: float | int) -> Tensor:
    """log p(x) [B] in nats by :func:`quadrature` (same keyword arguments for the grids)."""
    return quadrature(decode, log_lik_pairs, log_lik, x, **grid).log_px


class PosteriorGrid(NamedTuple):
    z1: Tensor        # [B, n] first latent coordinate of the grid's columns
    z2: Tensor        # [B, n] second latent coordinate of the grid's rows
    log_post: Tensor  # [B, n, n] log p(z | x) at (z1[b, j], z2[b, i]) in [b, i, j] (matplotlib contour order)
    log_q: Tensor     # [B, n, n] log q(z | x) at the same points


@torch.no_grad()
def posterior_grid(decode: Decode, log_lik: LogLik, x: Tensor, mu: Tensor, logvar: Tensor,
                   post_mean: Tensor, post_cov: Tensor, log_px: Tensor | None = None, n: int = 64,
                   width: float = 4.0, rows: int = ROWS) -> PosteriorGrid:
    """The true posterior p(z|x) = p(x|z) p(z) / p(x) and q(z|x) on one axis-aligned n x n grid per image.

    The window spans ± ``width`` standard deviations of both the posterior (post_mean, post_cov, e.g. from
    :func:`quadrature`) and q = N(mu, diag exp(logvar)), so both sets of contours are in view. With
    ``log_px`` (from :func:`quadrature`) log_post is the normalised density; without it, it is normalised
    by the grid's own sum (good when the window holds the posterior and resolves it).
    """
    _check_batch(x, mu, logvar, latent=2)
    _check(isinstance(n, int) and n >= 2, "n", n, "an integer >= 2")
    sd_q = (0.5 * logvar).exp()
    sd_p = post_cov.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
    lo = torch.minimum(mu - width * sd_q, post_mean - width * sd_p)
    hi = torch.maximum(mu + width * sd_q, post_mean + width * sd_p)
    t = torch.linspace(0, 1, n, device=x.device, dtype=x.dtype)
    axes = lo[:, None] + (hi - lo)[:, None] * t[:, None]                   # [B, n, 2]
    z1, z2 = axes[..., 0], axes[..., 1]
    z = torch.stack(torch.broadcast_tensors(z1[:, None, :], z2[:, :, None]), -1).reshape(len(x), n * n, 2)
    lj = _local_log_joint(decode, log_lik, x, z, rows)
    if log_px is None:
        log_cell = ((hi - lo) / (n - 1)).log().sum(-1)
        log_px = torch.logsumexp(lj, -1) + log_cell
    log_q = DiagonalGaussian(mu, logvar).log_prob(z)
    return PosteriorGrid(z1, z2, (lj - log_px[:, None]).view(-1, n, n), log_q.view(-1, n, n))


# --- importance-weighted bounds -----------------------------------------------------------------------------

class Bounds(NamedTuple):
    iwae: dict[int, Tensor]  # K -> [B]: estimate of the K-sample bound L_K (Burda et al. 2015, eq. 8)
    elbo: Tensor             # [B] Monte-Carlo ELBO: mean of log w over all samples (= L_1's estimate)
    elbo_kl: Tensor          # [B] ELBO as mean log p(x|z) − closed-form KL(q ‖ N(0, I))


def _log_weights(decode: Decode, log_lik: LogLik, x: Tensor, q: DiagonalGaussian, eps: Tensor,
                 rows: int) -> tuple[Tensor, Tensor]:
    """log w = log p(x|z) + log p(z) − log q(z|x) and log p(x|z), both [B, K], for z = mu + std·eps."""
    b, k, d = eps.shape
    z = q.mean[:, None] + q.std[:, None] * eps
    per_img, per_k = max(1, rows // k), min(k, rows)
    ll = torch.empty(b, k, device=x.device, dtype=x.dtype)
    for s in range(0, b, per_img):
        for t in range(0, k, per_k):
            zs = z[s:s + per_img, t:t + per_k]
            out = decode(zs.reshape(-1, d)).view(*zs.shape[:2], -1)
            ll[s:s + per_img, t:t + per_k] = log_lik(out, x[s:s + per_img, None])
    return ll + standard_normal_log_prob(z) - q.log_prob(z), ll


def iwae_bounds(decode: Decode, log_lik: LogLik, x: Tensor, mu: Tensor, logvar: Tensor,
                ks: tuple[int, ...] = (1, 10, 100, 1000), generator: torch.Generator | None = None,
                rows: int = ROWS) -> Bounds:
    """Importance-weighted bounds L_K = E log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x) ≤ log p(x) (Burda et al.
    2015, eq. 8), for every K in ``ks``, from ONE set of max(ks) samples per image.

    Each L_K is estimated by splitting the M = max(ks) samples into ⌊M/K⌋ disjoint blocks of K and averaging
    the blocks' log-mean-exp: every block is K independent draws, so each is an unbiased estimate of L_K,
    and no sample is wasted. When the ks divide each other (1, 10, 100, 1000) the estimates increase with K
    for every image, not only in expectation (a log-mean-exp over a union of blocks is at least the mean of
    the blocks' log-mean-exps, by concavity). K = 1 gives the Monte-Carlo ELBO over all M samples (``elbo``);
    ``elbo_kl`` replaces its Monte-Carlo KL by the closed form (Kingma & Welling 2014, eq. 10). Which has the
    lower variance depends on q: the closed form removes the KL's noise when q is far from p(z|x), but as
    q approaches p(z|x) every log w approaches log p(x) and ``elbo``'s variance goes to 0 while
    ``elbo_kl``'s does not (Roeder, Wu & Duvenaud 2017). Samples are drawn up front ([B, M, 2] normals), so results do not depend on ``rows``, which
    only bounds the decoded rows held at once. Report across images with :func:`mean_se`.
    """
    _check_batch(x, mu, logvar)
    _check(len(ks) > 0 and all(isinstance(k, int) and k >= 1 for k in ks), "ks", ks,
           "a non-empty sequence of sample counts >= 1")
    m = max(ks)
    eps = torch.randn(mu.shape[0], m, mu.shape[1], generator=generator, device=mu.device, dtype=mu.dtype)
    q = DiagonalGaussian(mu, logvar)
    with torch.no_grad():
        log_w, ll = _log_weights(decode, log_lik, x, q, eps, rows)
    iwae = {}
    for k in ks:
        blocks = log_w[:, : (m // k) * k].view(len(x), m // k, k)
        iwae[k] = (torch.logsumexp(blocks, -1) - math.log(k)).mean(-1)
    return Bounds(iwae, log_w.mean(-1), ll.mean(-1) - q.kl())


def elbo(decode: Decode, log_lik: LogLik, x: Tensor, mu: Tensor, logvar: Tensor, samples: int = 1000,
         generator: torch.Generator | None = None, rows: int = ROWS) -> Tensor:
    """ELBO [B] = E_q[log p(x|z) + log p(z) − log q(z|x)] by ``samples`` draws (Kingma & Welling 2014, eq. 2-3):
    the estimator for comparing an encoder's q with a locally fitted q* (:func:`gaps`), whose log weights
    are nearly constant, so its ELBO is estimated almost without noise (Roeder, Wu & Duvenaud 2017)."""
    return iwae_bounds(decode, log_lik, x, mu, logvar, ks=(samples,), generator=generator, rows=rows).elbo


def mean_se(values: Tensor) -> tuple[Tensor, Tensor]:
    """Mean across images and its standard error s/√B (the test set as a sample), for "mean ± s.e."."""
    _check(values.dim() == 1 and values.numel() >= 2, "values.shape", tuple(values.shape), "[B] with B >= 2")
    return values.mean(), values.std() / math.sqrt(values.numel())


# --- the inference gaps of Cremer, Li & Duvenaud (2018) -----------------------------------------------------

def fit_local_gaussian(decode: Decode, log_lik: LogLik, x: Tensor, mu0: Tensor, logvar0: Tensor,
                       steps: int = 300, lr: float = 0.5, samples: int = 16, eval_samples: int = 1000,
                       generator: torch.Generator | None = None, rows: int = ROWS) -> tuple[Tensor, Tensor, Tensor]:
    """The best Gaussian q*(z|x) = N(mu, diag exp(logvar)) for each image alone, and its ELBO [B].

    Cremer, Li & Duvenaud (2018, §3): maximise each image's ELBO over its own (mu, logvar) with the decoder
    fixed, starting from the encoder's output (mu0, logvar0). Adam on the reparameterised ELBO (``samples``
    draws per step) with the "sticking the landing" gradient of Roeder, Wu & Duvenaud (2017, eq. 8): log q
    is evaluated with its parameters detached, which drops a score term of mean zero, so the gradient's
    variance vanishes as q reaches p(z|x) (exactly so when p(z|x) is Gaussian). The learning rate ``lr``
    decays to 0 by a cosine schedule so the final q settles instead of jittering. Parameters are in the start's own units, mu = mu0 + std0·δ and
    logvar = logvar0 + γ, so one ``lr`` suits posteriors of any width. Gradients reach only δ and γ
    (torch.autograd.grad): the decoder's parameters are untouched, but ``decode`` must be differentiable in z
    (not wrapped in no_grad). Images are independent (Adam is elementwise) and fitted in chunks of
    ``rows // samples``. The returned ELBO uses ``eval_samples`` fresh draws (:func:`elbo`). Deterministic
    given ``generator`` (and ``rows``).
    """
    _check_batch(x, mu0, logvar0)
    _check(isinstance(steps, int) and steps >= 1, "steps", steps, "an integer >= 1")
    _check(lr > 0, "lr", lr, "> 0")
    _check(isinstance(samples, int) and samples >= 1, "samples", samples, "an integer >= 1")
    mus, logvars = [], []
    per = max(1, rows // samples)
    for s in range(0, len(x), per):
        xs, m0, lv0 = x[s:s + per], mu0[s:s + per].detach(), logvar0[s:s + per].detach()
        sd0 = (0.5 * lv0).exp()
        delta = torch.zeros_like(m0, requires_grad=True)
        gamma = torch.zeros_like(lv0, requires_grad=True)
        opt = torch.optim.Adam([delta, gamma], lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            with torch.enable_grad():
                q = DiagonalGaussian(m0 + sd0 * delta, lv0 + gamma)
                z = q.rsample(samples, generator)                           # [b, S, d]
                out = decode(z.reshape(-1, z.shape[-1])).view(*z.shape[:2], -1)
                log_q = DiagonalGaussian(q.mean.detach(), q.logvar.detach()).log_prob(z)
                log_w = log_lik(out, xs[:, None]) + standard_normal_log_prob(z) - log_q
                neg_elbo = -log_w.mean(-1).sum()
                delta.grad, gamma.grad = torch.autograd.grad(neg_elbo, [delta, gamma])
            opt.step()
            sched.step()
        mus.append((m0 + sd0 * delta).detach())
        logvars.append((lv0 + gamma).detach())
    mu, logvar = torch.cat(mus), torch.cat(logvars)
    return mu, logvar, elbo(decode, log_lik, x, mu, logvar, eval_samples, generator, rows)


def gaps(log_px: Tensor, elbo_local: Tensor, elbo_encoder: Tensor) -> dict[str, Tensor]:
    """The inference gap log p(x) − ELBO(q_encoder) split as in Cremer, Li & Duvenaud (2018, eq. 4-5), per image:
    approximation = log p(x) − ELBO(q*) (the Gaussian family), amortisation = ELBO(q*) − ELBO(q_encoder)."""
    return {"inference": log_px - elbo_encoder, "approximation": log_px - elbo_local,
            "amortisation": elbo_local - elbo_encoder}
