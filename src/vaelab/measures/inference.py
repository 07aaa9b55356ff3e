"""Marginal likelihoods of models with a 2-D latent: log p(x) by quadrature, bounds by importance sampling.

The evaluation's fair yardstick and the report's "Variational inference, seen" section. With a 2-D
latent, log p(x) = log ∫ p(x|z) p(z) dz can be computed to a small fraction of a nat by a grid sum, so the
ELBO's gap can be taken apart exactly (Cremer, Li & Duvenaud 2018, Inference Suboptimality in VAEs):

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

from vaelab.core.distributions import DiagonalGaussian, standard_normal_log_prob
from vaelab.core.errors import ConfigError
from vaelab.measures import importance

# z [N, d] -> decoder output [N, P*784] (the model's decoder, possibly closed over a label y for a CVAE).
Decode = Callable[[Tensor], Tensor]
# (out [M, P*784], x [B, 784]) -> [B, M]: log p(x_b | out_m) for all pairs, in nats (a matrix product).
LogLikPairs = Callable[[Tensor, Tensor], Tensor]
# (out [..., P*784], x [..., 784]) -> [...]: log p(x | out), broadcasting.
LogLik = Callable[[Tensor, Tensor], Tensor]

# Rows pushed through the decoder at once: fast matrix products, activations around 50 MB.
ROWS = 16_384
# A local grid's spacing must be at most RESOLUTION posterior s.d. along every direction (for a Gaussian,
# aliasing error below 2·exp(−2π²) ≈ 5e-9).
RESOLUTION = 1.0
# A local grid covers a posterior when its mean ± COVER s.d. lies inside the grid; the coarse box needs
# less (4.5 s.d.: 3e-6 of the mass beyond, per side), which spares a prior-wide posterior a local grid.
COVER = 5.0
COARSE_COVER = 4.5
# Coarse cells outside the local grids get another grid when share x coset spread exceeds this.
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


def _weights(lj: Tensor) -> tuple[Tensor, Tensor]:
    """exp(lj − max) [b, m] and the max [b]: one pass of exp, after which every sum over a grid is a plain sum."""
    top = lj.amax(-1)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))     # a row with nothing left
    return (lj - top[:, None]).exp(), top


def _moments(w: Tensor, pts: Tensor) -> tuple[Tensor, Tensor]:
    """Mean [b, 2] and covariance [b, 2, 2] of points pts ([m, 2] shared, or [b, m, 2]) under weights w [b, m]."""
    total = w.sum(-1).clamp_min(torch.finfo(w.dtype).tiny)
    if pts.dim() == 3:
        mean = torch.einsum("bm,bmi->bi", w, pts) / total[:, None]
        d = pts - mean[:, None]
        return mean, torch.einsum("bm,bmi,bmj->bij", w, d, d) / total[:, None, None]
    # Shared points: raw moments by two matrix products, in float64 so that E[zzᵀ] − mmᵀ keeps its digits.
    w64, p = w.double() / total.double()[:, None], pts.double()
    mean = w64 @ p
    second = w64 @ torch.stack([p[:, 0] ** 2, p[:, 0] * p[:, 1], p[:, 1] ** 2], -1)
    c00, c01, c11 = (second - torch.stack([mean[:, 0] ** 2, mean[:, 0] * mean[:, 1], mean[:, 1] ** 2], -1)).unbind(-1)
    cov = torch.stack([torch.stack([c00, c01], -1), torch.stack([c01, c11], -1)], -2)
    return mean.to(w.dtype), cov.to(w.dtype)


def _alias(w: Tensor, n: int) -> Tensor:
    """Largest relative difference [b] between a grid's sum and the sums of its four cosets, the grids of twice
    the spacing (even/odd rows x even/odd columns, each scaled by 4); w [b, n²] are the grid's weights."""
    g = w.view(len(w), n, n)
    total = w.sum(-1)
    cosets = torch.stack([g[:, i::2, j::2].sum((1, 2)) for i in (0, 1) for j in (0, 1)], -1)
    spread = (4 * cosets / total[:, None] - 1).abs().amax(-1)
    return torch.where(total > 0, spread, torch.zeros_like(spread))


# --- exact log p(x) by quadrature ---------------------------------------------------------------------------

class Quadrature(NamedTuple):
    log_px: Tensor     # [B] log p(x) in nats
    error: Tensor      # [B] error estimate for log_px in nats: Σ over grids of share x coset spread
    mean: Tensor       # [B, 2] mean of the posterior's main mode (the first local grid; all of it if none)
    cov: Tensor        # [B, 2, 2] its covariance
    outside: Tensor    # [B] share of p(x) counted on coarse cells outside every local grid (tails, small modes)
    modes: Tensor      # [B] local grids accepted: 0 (the coarse grid was accurate), 1, or more modes
    rounds: Tensor     # [B] local grids evaluated in all
    converged: Tensor  # [B] bool: every accepted grid passed the coverage and aliasing checks


class _Grids(NamedTuple):
    z0: Tensor                # [n0², 2] coarse points, z0[i*n0 + j] = (axis[i], axis[j])
    n0: int
    h0: float                 # coarse spacing
    radius: float
    local: list[tuple[Tensor, float, int]]  # per density level: points u [n², 2], spacing h_u, n
    box: float                # local half-width in posterior s.d.
    tol: float                # coset agreement required
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


def _in_cells(z: Tensor, m: Tensor, c: Tensor, edge: Tensor) -> Tensor:
    """Whether points z ([m, 2] or [k, m, 2]) lie in the cells of local grids: u = C⁻¹(z − m) in [−edge, edge]²
    for centres m [k, 2], lower-triangular factors c [k, 2, 2] and half-widths edge [k] (box + half a cell)."""
    d = z - m[:, None]
    c = c[:, None]
    v1 = d[..., 0] / c[..., 0, 0]
    v2 = (d[..., 1] - c[..., 1, 0] * v1) / c[..., 1, 1]
    return (v1.abs() <= edge[:, None]) & (v2.abs() <= edge[:, None])


def _window(lj0: Tensor, g: _Grids) -> tuple[Tensor, Tensor, Tensor]:
    """Moments of the coarse posterior in the 9x9 cells around each image's maximum, and whether they resolve it."""
    w, n0 = 4, g.n0
    top = lj0.argmax(-1)
    lo_i = (top // n0 - w).clamp(0, n0 - 2 * w - 1)                         # shifted inward at the box's edge
    lo_j = (top % n0 - w).clamp(0, n0 - 2 * w - 1)
    off = torch.arange(2 * w + 1, device=lj0.device)
    win = ((lo_i[:, None, None] + off[:, None]) * n0 + lo_j[:, None, None] + off).reshape(len(lj0), -1)
    mean, cov = _moments(_weights(lj0.gather(1, win))[0], g.z0[win])
    return mean, cov, _lam_min(cov) >= (RESOLUTION * g.h0) ** 2


def _refine(decode: Decode, log_lik: LogLik, x: Tensor, m: Tensor, sig: Tensor,
            taken: list[tuple[Tensor, Tensor, Tensor]], g: _Grids) -> tuple[Tensor, ...]:
    """Local rounds (step 2 of :func:`quadrature`) for images x, from centres m [k, 2] and covariances sig.

    Points in the cells of grids already ``taken`` for these images (centres, factors, half-widths) are
    left out, so no region is summed twice. Returns the last grid's log-sum [k] and coset spread, the
    posterior moments, the grid's centre, factor and half-width, the rounds used and whether it was accepted.
    """
    k = len(x)
    log_sum, spread, mean = x.new_empty(k), x.new_empty(k), torch.empty_like(m)
    cov, cen, fac, edge = torch.empty_like(sig), torch.empty_like(m), torch.empty_like(sig), x.new_empty(k)
    used = torch.zeros(k, dtype=torch.long, device=x.device)
    level = torch.zeros_like(used)
    active = torch.ones(k, dtype=torch.bool, device=x.device)
    for _ in range(g.rounds):
        act = active.nonzero().squeeze(1)                                   # host syncs: a few per round
        if act.numel() == 0:
            break
        for lev in level[act].unique().tolist():
            idx = act[level[act] == lev]
            u, h_u, n = g.local[lev]
            c = _chol(sig[idx])
            z = m[idx, None] + torch.einsum("kij,mj->kmi", c, u)            # [k, n², 2]
            lj = _local_log_joint(decode, log_lik, x[idx], z, g.rows)
            for m_t, c_t, e_t in taken:
                lj = lj.masked_fill(_in_cells(z, m_t[idx], c_t[idx], e_t[idx]), -math.inf)
            w, top = _weights(lj)
            mu_u, cov_u = _moments(w, u)
            shaped = ((_lam_min(cov_u) >= (RESOLUTION * h_u) ** 2)
                      & (mu_u.abs() + COVER * cov_u.diagonal(dim1=-2, dim2=-1).sqrt() <= g.box).all(-1))
            spread[idx] = _alias(w, n)
            ok = shaped & (spread[idx] <= g.tol)
            log_sum[idx] = w.sum(-1).log() + top + (c[:, 0, 0] * c[:, 1, 1]).log() + 2 * math.log(h_u)
            mean[idx] = m[idx] + torch.einsum("kij,kj->ki", c, mu_u)
            cov[idx] = c @ cov_u @ c.transpose(1, 2)
            cen[idx], fac[idx], edge[idx] = m[idx], c, g.box + h_u / 2
            used[idx] += 1
            active[idx] = ~ok
            # Well placed but aliased (structure finer than the moments show: a curved ridge, the kinks of a
            # ReLU decoder): the next round doubles the points per axis. Next grid: this round's moments,
            # inflated by a third of a cell (a posterior narrower than the spacing shows up as one point,
            # its mode within half a cell of it).
            level[idx] = (level[idx] + (shaped & ~ok).long()).clamp(max=len(g.local) - 1)
            m[idx], sig[idx] = mean[idx], cov[idx] + (h_u / 3) ** 2 * (c @ c.transpose(1, 2))
    return log_sum, spread, mean, cov, cen, fac, edge, used, ~active


@torch.no_grad()
def quadrature(decode: Decode, log_lik_pairs: LogLikPairs, log_lik: LogLik, x: Tensor, *,
               tol: float = 0.05, radius: float = 5.0, coarse: int = 256, local: int = 20, box: float = 6.0,
               rounds: int = 6, modes: int = 3, images: int = 256, rows: int = ROWS) -> Quadrature:
    """log p(x) = log ∫ p(x|z) N(z; 0, I) dz for a 2-D latent by grid sums (Kingma & Welling 2014, §2.1).

    Why grids work: a rectangle (trapezoid) sum Σ_j f(z_j)·cell on a uniform grid converges exponentially
    for a smooth integrand that vanishes at the grid's edge (Trefethen & Weideman 2014, SIAM Rev. 56(3));
    for a Gaussian of s.d. σ along an axis of spacing h the relative error is about 2·exp(−2π²σ²/h²): 5e-9
    at h = σ. So the grid must be fine *relative to the posterior*, and an affine grid z = m + C u (u uniform,
    C Cᵀ the posterior's covariance) is, with a few hundred points, however narrow (σ ~ 0.001-1) or
    correlated the posterior. A ReLU decoder makes log p(x|z) only piecewise smooth (kinks where a unit
    switches), and convergence drops to second order, error ∝ h². Either way accuracy is checked, not
    assumed: a grid is accepted only if its four cosets (the grids of twice the spacing) agree to within
    ``tol`` (relative) on the integral, and ``error`` reports share x spread summed over the grids: at the
    h² rate the full grid's error is typically a third to a quarter of its cosets' deviation (at most 0.65
    of it in the checks of tests/test_inference.py and on a trained VAE), far less for smooth integrands.
    The encoder is not used: the yardstick does not depend on q(z|x).

    1. Coarse grid, shared: ``coarse``² points on [−radius, radius]² (spacing h0 = 2·radius/(coarse−1),
       0.039 by default), decoded once for all images; log_lik_pairs gives every image's log joint in one
       matrix product. If its cosets agree, the 9x9 cells around the maximum resolve the posterior (smallest
       s.d. ≥ h0) and mean ± 4.5 s.d. lies in the box, the coarse sum is the answer (wide posteriors, e.g.
       an untrained decoder; the prior has 1.1e-6 of its mass outside the box).
    2. Otherwise local rounds: an affine grid of ``local``² points, u ∈ [−box, box]², z = m + C u with
       C Cᵀ = Σ, starting from the moments of the 9x9 coarse cells around the maximum, Σ inflated by
       (h0/3)² I (a posterior narrower than h0 shows up there as one point). A round is accepted when, in
       its own units, the posterior's smallest s.d. is at least the spacing h_u = 2·box/(local−1), mean ± 5
       s.d. lies in [−box, box], and the cosets agree (each check covers a blind spot of the other: the
       cosets of a grid centred on a symmetric posterior agree whatever the spacing, and the moments of a
       curved ridge overstate its thickness). Otherwise the next round starts from this round's moments
       (each such round refines the spacing about fivefold: σ = 0.01 needs one round, σ = 0.001 two or
       three), with twice the points per axis (up to 4·local) when only the cosets disagreed.
    3. Combination without double counting: p(x) = Σ_grids Σ_points f·|det C|·h_u² + Σ_{coarse points in no
       local grid's cells} f·h0². The posterior density at a local grid's edge (≥ 5 s.d. out) is ~e^-12.5 of
       its peak, so the strip where the coarse and local tilings disagree carries a negligible mass.
    4. Other modes: while the coarse cells outside the local grids hold a share s > 1e-3 of p(x) that the
       coarse grid does not pin down (unresolved maximum, or s·coset spread > 1e-3), the largest of them gets
       its own local grid (steps 2-3, leaving out points already in an earlier grid), up to ``modes`` in all.

    Measured on a 2-D Bernoulli VAE (784-512-256-128-2, ReLU) against brute-force sums at spacing ≤ 0.002:
    max error 0.010 nats with tol = 0.05 (0.004 at 0.02, 0.0015 at 0.01). Cost: coarse² decoded rows once,
    local² rows per image, mode and round (4x or 16x at the finer levels), one log_lik_pairs call and
    [images, coarse²] log joints (67 MB by default) per chunk of ``images``. Limitation: a mode narrower
    than about h0/6 can fall between coarse points unseen unless it is the coarse maximum; an IWAE bound
    above log p(x) by more than its noise would reveal it.
    """
    _check_batch(x)
    _check(0 < tol < 1, "tol", tol, "a relative tolerance in (0, 1), e.g. 0.05")
    _check(radius > 0, "radius", radius, "> 0")
    _check(isinstance(coarse, int) and coarse >= 16 and coarse % 2 == 0, "coarse", coarse,
           "an even integer >= 16 (points per axis)")
    _check(isinstance(local, int) and local >= 8 and local % 2 == 0, "local", local,
           "an even integer >= 8 (points per axis)")
    _check(box >= COVER + 0.5, "box", box, f">= {COVER + 0.5} (the local grid's half-width in posterior s.d.)")
    for name, v in (("rounds", rounds), ("modes", modes), ("images", images), ("rows", rows)):
        _check(isinstance(v, int) and v >= 1, name, v, "an integer >= 1")
    dev, dt = x.device, x.dtype
    axis = torch.linspace(-radius, radius, coarse, device=dev, dtype=dt)
    levels = []
    for n in (local, 2 * local, 4 * local):
        u_axis = torch.linspace(-box, box, n, device=dev, dtype=dt)
        levels.append((torch.cartesian_prod(u_axis, u_axis), 2 * box / (n - 1), n))
    g = _Grids(torch.cartesian_prod(axis, axis), coarse, 2 * radius / (coarse - 1), radius, levels, box, tol,
               rounds, modes, rows)
    out0 = torch.cat([decode(g.z0[s:s + rows]) for s in range(0, len(g.z0), rows)])
    prior0 = standard_normal_log_prob(g.z0)
    results = [_quadrature_chunk(decode, log_lik, x[s:s + images], log_lik_pairs(out0, x[s:s + images]) + prior0, g)
               for s in range(0, len(x), images)]
    return Quadrature(*(torch.cat(parts) for parts in zip(*results)))


def _quadrature_chunk(decode: Decode, log_lik: LogLik, x: Tensor, lj0: Tensor, g: _Grids) -> Quadrature:
    """Steps 1-4 of :func:`quadrature` for one chunk of images; lj0 [b, n0²] is their coarse log joint."""
    b, dev = len(x), x.device
    w0, top0 = _weights(lj0)
    log_h0 = 2 * math.log(g.h0)
    mean, cov = _moments(w0, g.z0)
    win_mean, win_cov, resolved = _window(lj0, g)
    sd = cov.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
    covered = (mean.abs() + COARSE_COVER * sd <= g.radius).all(-1)
    # Both checks: the cosets' agreement is blind to a posterior symmetric about a point midway between grid
    # points (e.g. mirror-image modes), the window's moments to a thin curved ridge.
    need = ~(covered & resolved & (_alias(w0, g.n0) <= g.tol))
    # A wide posterior starts from its global moments; one narrower than the coarse spacing from its window's.
    start_m = torch.where(resolved[:, None], mean, win_mean)
    start_s = torch.where(resolved[:, None, None], cov, win_cov)
    eye = torch.eye(2, device=dev, dtype=x.dtype)
    parts: list[tuple[Tensor, Tensor]] = []                                 # log-sum and coset spread per grid
    taken: list[tuple[Tensor, Tensor, Tensor]] = []                         # their centres, factors, half-widths
    excluded = torch.zeros_like(lj0, dtype=torch.bool)                      # coarse points inside a local grid
    modes = torch.zeros(b, dtype=torch.long, device=dev)
    rounds = torch.zeros_like(modes)
    converged = torch.ones(b, dtype=torch.bool, device=dev)
    for k in range(g.modes):
        idx = need.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        log_sum, spread, m_k, cov_k, cen, fac, edge, used, ok = _refine(
            decode, log_lik, x[idx], start_m[idx].clone(), start_s[idx] + (g.h0 / 3) ** 2 * eye,
            [(m_t[idx], c_t[idx], e_t[idx]) for m_t, c_t, e_t in taken], g)
        if k == 0:
            mean[idx], cov[idx] = m_k, cov_k
        parts.append((torch.full((b,), -math.inf, dtype=x.dtype, device=dev).index_put((idx,), log_sum),
                      torch.zeros(b, dtype=x.dtype, device=dev).index_put((idx,), spread)))
        # Images without this grid get an empty one (zero half-width, far away).
        taken.append((torch.full((b, 2), 1e9, dtype=x.dtype, device=dev).index_put((idx,), cen),
                      eye.expand(b, 2, 2).clone().index_put((idx,), fac),
                      torch.zeros(b, dtype=x.dtype, device=dev).index_put((idx,), edge)))
        excluded[idx] |= _in_cells(g.z0, cen, fac, edge)
        modes[idx] += 1
        rounds[idx] += used
        converged[idx] &= ok
        # Another mode? Where the coarse cells left hold a share of p(x) that they do not pin down.
        rest = w0[idx].masked_fill(excluded[idx], 0)
        log_rest = rest.sum(-1).log() + top0[idx] + log_h0
        share = (log_rest - torch.logsumexp(torch.stack([p[idx] for p, _ in parts] + [log_rest]), 0)).exp()
        start_m[idx], start_s[idx], res_k = _window(lj0[idx].masked_fill(excluded[idx], -math.inf), g)
        more = (share > OTHER_MODE) & (~res_k | (share * _alias(rest, g.n0) > OTHER_MODE))
        need = torch.zeros_like(need).index_put((idx,), more)
    rest = w0.masked_fill(excluded, 0)
    log_rest = rest.sum(-1).log() + top0 + log_h0
    log_px = torch.logsumexp(torch.stack([p for p, _ in parts] + [log_rest]), 0)
    error = sum(((p - log_px).exp() * s for p, s in parts), (log_rest - log_px).exp() * _alias(rest, g.n0))
    outside = torch.where(modes > 0, (log_rest - log_px).exp(), torch.zeros_like(log_px))
    return Quadrature(log_px, error, mean, cov, outside, modes, rounds, converged)


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


def iwae_bounds(decode: Decode, log_lik: LogLik, x: Tensor, mu: Tensor, logvar: Tensor,
                ks: tuple[int, ...] = (1, 10, 100, 1000), generator: torch.Generator | None = None,
                rows: int = importance.ROWS) -> Bounds:
    """Importance-weighted bounds L_K = E log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x) ≤ log p(x) (Burda et al.
    2015, eq. 8), for every K in ``ks``, from ONE set of max(ks) samples per image, by
    :func:`vaelab.measures.importance.estimate` (disjoint blocks of K: see :func:`vaelab.measures.importance.bounds`). K = 1 gives the Monte-Carlo ELBO over all M samples (``elbo``);
    ``elbo_kl`` replaces its Monte-Carlo KL by the closed form (Kingma & Welling 2014, eq. 10). Which has the
    lower variance depends on q: the closed form removes the KL's noise when q is far from p(z|x), but as
    q approaches p(z|x) every log w approaches log p(x) and ``elbo``'s variance goes to 0 while
    ``elbo_kl``'s does not (Roeder, Wu & Duvenaud 2017). Samples are drawn up front ([B, M, d] normals);
    ``rows`` bounds the decoded rows held at once (and is the shape of every decoder call). Report across
    images with :func:`vaelab.measures.importance.mean_se`.
    """
    _check_batch(x, mu, logvar)
    q = DiagonalGaussian(mu, logvar)
    importance.check_ks(ks)
    eps = importance.draw(q, max(ks), generator)
    est = importance.estimate(lambda z, idx: _pointwise(decode, log_lik, z, x[idx]), q, eps, ks, rows=rows)
    return Bounds(est.iwae, est.elbo, est.log_lik - q.kl())


def _pointwise(decode: Decode, log_lik: LogLik, z: Tensor, x: Tensor) -> Tensor:
    """log p(x_i | z_ik) [n, k] for z [n, k, d] and images x [n, pixels]: one decoder pass of n·k rows."""
    n, k, d = z.shape
    return log_lik(decode(z.reshape(n * k, d)).view(n, k, -1), x[:, None])


def elbo(decode: Decode, log_lik: LogLik, x: Tensor, mu: Tensor, logvar: Tensor, samples: int = 1000,
         generator: torch.Generator | None = None, rows: int = importance.ROWS) -> Tensor:
    """ELBO [B] = E_q[log p(x|z) + log p(z) − log q(z|x)] by ``samples`` draws (Kingma & Welling 2014, eq. 2-3):
    the estimator for comparing an encoder's q with a locally fitted q* (:func:`gaps`), whose log weights
    are nearly constant, so its ELBO is estimated almost without noise (Roeder, Wu & Duvenaud 2017)."""
    return iwae_bounds(decode, log_lik, x, mu, logvar, ks=(samples,), generator=generator, rows=rows).elbo


# --- the inference gaps of Cremer, Li & Duvenaud (2018) -----------------------------------------------------

def fit_local_gaussian(decode: Decode, log_lik: LogLik, x: Tensor, mu0: Tensor, logvar0: Tensor,
                       steps: int = 300, lr: float = 0.5, samples: int = 16, eval_samples: int = 1000,
                       generator: torch.Generator | None = None, rows: int = ROWS) -> tuple[Tensor, Tensor, Tensor]:
    """The best Gaussian q*(z|x) = N(mu, diag exp(logvar)) for each image alone, and its ELBO [B].

    Cremer, Li & Duvenaud (2018): maximise each image's ELBO over its own (mu, logvar) with the decoder
    fixed, starting from the encoder's output (mu0, logvar0). Adam on the reparameterised ELBO (``samples``
    draws per step) with the "sticking the landing" gradient of Roeder, Wu & Duvenaud (2017): log q
    is evaluated with its parameters detached, which drops a score term of mean zero, so the gradient's
    variance vanishes as q reaches p(z|x) (exactly so when p(z|x) is Gaussian). The learning rate ``lr``
    decays to 0 by a cosine schedule so the final q settles instead of jittering. Parameters are in the
    start's own units, mu = mu0 + std0·δ and logvar = logvar0 + γ, so one ``lr`` suits posteriors of any
    width (0.5 reached the exact posterior from 3 s.d. off and 7x too wide in 300 steps; 0.1 did not).
    A Gaussian fit picks one mode of a multimodal posterior, so the result can depend on the start.
    Gradients reach only δ and γ (torch.autograd.grad): the decoder's parameters are untouched, but
    ``decode`` must be differentiable in z (not wrapped in no_grad). Images are independent (Adam is
    elementwise) and fitted in chunks of ``rows // samples``. The returned ELBO uses ``eval_samples`` fresh
    draws (:func:`elbo`). Deterministic given ``generator`` (and ``rows``).
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
    """The inference gap log p(x) − ELBO(q_encoder) split as in Cremer, Li & Duvenaud (2018), per image:
    approximation = log p(x) − ELBO(q*) (the Gaussian family), amortisation = ELBO(q*) − ELBO(q_encoder).
    Estimate both ELBOs the same way (:func:`elbo`); MC noise can make a small gap slightly negative."""
    return {"inference": log_px - elbo_encoder, "approximation": log_px - elbo_local,
            "amortisation": elbo_local - elbo_encoder}
