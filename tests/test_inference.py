"""Marginal likelihoods against models whose answer is known: a linear-Gaussian latent model (closed form),
a small nonlinear decoder (brute-force fine grids), and the bounds' textbook properties."""

from __future__ import annotations

import math

import pytest
import torch

from vaelab.core.errors import ConfigError
from vaelab.measures import importance, inference

LOG_2PI = math.log(2 * math.pi)
D = 12


def gaussian_log_lik(sigma: float):
    """log N(x; out, σ² I) summed over pixels, and its all-pairs form as a matrix product."""
    def log_lik(out, x):
        return -(0.5 * (x - out).pow(2) / sigma**2 + math.log(sigma) + 0.5 * LOG_2PI).sum(-1)

    def pairs(out, x):
        return ((x @ out.T - 0.5 * out.pow(2).sum(-1) - 0.5 * x.pow(2).sum(-1, keepdim=True)) / sigma**2
                - x.shape[-1] * (math.log(sigma) + 0.5 * LOG_2PI))
    return log_lik, pairs


class LinearGaussian:
    """z ~ N(0, I_2), x | z ~ N(W z + b, σ² I): p(x) = N(b, W Wᵀ + σ² I) and p(z|x) Gaussian, exactly.
    W's columns are orthogonal, so the posterior's covariance (I + WᵀW/σ²)⁻¹ is diagonal: q can equal it."""

    def __init__(self, sigma: float, scales=(1.0, 1.0), seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(D, 2, generator=g, dtype=torch.float64))
        self.w = q * torch.tensor(scales, dtype=torch.float64)
        self.b = 0.5 * torch.randn(D, generator=g, dtype=torch.float64)
        self.sigma = sigma
        self.log_lik, self.pairs = gaussian_log_lik(sigma)

    def decode(self, z):
        return z @ self.w.T + self.b

    def sample(self, n: int, seed: int = 1):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 2, generator=g, dtype=torch.float64)
        return self.decode(z) + self.sigma * torch.randn(n, D, generator=g, dtype=torch.float64)

    def log_px(self, x):
        cov = self.w @ self.w.T + self.sigma**2 * torch.eye(D, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)

    def posterior(self, x):
        """Mean [B, 2] and log-variance [B, 2] of p(z|x) (diagonal by construction)."""
        prec = torch.eye(2, dtype=torch.float64) + self.w.T @ self.w / self.sigma**2
        var = torch.linalg.inv(prec)
        assert torch.allclose(var, torch.diag(var.diagonal()), atol=1e-12)
        mean = (x - self.b) @ self.w / self.sigma**2 @ var
        return mean, var.diagonal().log().expand_as(mean)


class Tiny:
    """A small nonlinear decoder, x | z ~ N(f(z), σ² I). ``even`` makes f(z) = f(−z): a two-mode posterior."""

    def __init__(self, sigma: float, even: bool = False, relu: bool = False, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.a = 1.5 * torch.randn(2, 8, generator=g, dtype=torch.float64)
        self.c = torch.randn(8, D, generator=g, dtype=torch.float64)
        self.even, self.relu, self.sigma = even, relu, sigma
        self.log_lik, self.pairs = gaussian_log_lik(sigma)

    def decode(self, z):
        if self.even:
            h = torch.cosh(z @ self.a) - 1
        elif self.relu:
            h = torch.relu(z @ self.a + 0.3)
        else:
            h = torch.tanh(z @ self.a + 0.3)
        return h @ self.c

    def sample(self, n: int, seed: int = 1):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 2, generator=g, dtype=torch.float64)
        return self.decode(z) + self.sigma * torch.randn(n, D, generator=g, dtype=torch.float64)


def brute_force(model, x, lo, hi, n):
    """log ∫ p(x|z) p(z) dz by a plain n x n rectangle rule on the box [lo, hi]² per image (lo, hi [B, 2])."""
    t = torch.linspace(0, 1, n, dtype=torch.float64)
    out = []
    for b in range(len(x)):
        a1 = lo[b, 0] + (hi[b, 0] - lo[b, 0]) * t
        a2 = lo[b, 1] + (hi[b, 1] - lo[b, 1]) * t
        z = torch.cartesian_prod(a1, a2)
        lj = torch.cat([model.pairs(model.decode(zz), x[b:b + 1])[0] for zz in z.split(200_000)])
        lj = lj - 0.5 * (z.pow(2).sum(-1) + 2 * LOG_2PI)
        out.append(torch.logsumexp(lj, 0) + ((hi[b] - lo[b]) / (n - 1)).log().sum())
    return torch.stack(out)


@pytest.mark.parametrize("sigma, scales",
                         [(0.5, (1.0, 1.0)), (0.03, (1.0, 3.0)), (0.003, (1.0, 0.7)), (5.0, (1.0, 1.0))])
def test_quadrature_is_exact_on_a_linear_gaussian_model(sigma, scales):
    # Posterior s.d. ~0.45 (wide), 0.03 x 0.01 and 0.003 x 0.004 (narrower than the coarse spacing 0.039), ~1.
    model = LinearGaussian(sigma, scales)
    x = model.sample(32)
    res = inference.quadrature(model.decode, model.pairs, model.log_lik, x)
    assert res.converged.all() and (res.error < 0.05).all()
    torch.testing.assert_close(res.log_px, model.log_px(x), atol=1e-3, rtol=0)
    mean, logvar = model.posterior(x)
    sd = (0.5 * logvar).exp()
    assert ((res.mean - mean).abs() <= 0.01 * sd).all()
    torch.testing.assert_close(res.cov.diagonal(dim1=-2, dim2=-1), logvar.exp(), rtol=1e-2, atol=0)
    assert (res.outside < 1e-6).all()


def test_narrow_posteriors_get_local_grids_and_wide_ones_need_none():
    narrow, wide = LinearGaussian(0.03, (1.0, 3.0)), LinearGaussian(5.0)
    res = inference.quadrature(narrow.decode, narrow.pairs, narrow.log_lik, narrow.sample(8))
    assert (res.modes == 1).all() and (res.rounds >= 1).all()
    x = wide.b + 0.1 * torch.randn(8, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    res = inference.quadrature(wide.decode, wide.pairs, wide.log_lik, x)     # posterior ~N(0, 0.98²): coarse grid
    assert (res.modes == 0).all() and (res.outside == 0).all()
    torch.testing.assert_close(res.log_px, wide.log_px(x), atol=1e-4, rtol=0)


def test_quadrature_matches_brute_force_fine_grids_on_a_nonlinear_decoder():
    model = Tiny(sigma=0.3)
    x = model.sample(6)
    res = inference.quadrature(model.decode, model.pairs, model.log_lik, x)
    assert res.converged.all()
    sd = res.cov.diagonal(dim1=-2, dim2=-1).sqrt()
    assert (sd.min(-1).values < 0.039).any() and (sd.min(-1).values > 0.05).any()   # narrow and wide ones
    # Brute force: 501² points on the mode ± 12 s.d. (spacing 0.05 s.d.; the local grid has 0.63).
    half = 12 * sd.max(-1, keepdim=True).values
    exact = brute_force(model, x, res.mean - half, res.mean + half, 501)
    torch.testing.assert_close(res.log_px, exact, atol=1e-3, rtol=0)
    # That window holds the whole posterior: where a plain 401² grid on [-6, 6]² resolves it, they agree.
    resolved = sd.min(-1).values > 0.05
    plain = brute_force(model, x[resolved], torch.full((6, 2), -6.0), torch.full((6, 2), 6.0), 401)
    torch.testing.assert_close(plain, exact[resolved], atol=1e-3, rtol=0)


def test_a_relu_decoder_converges_more_slowly_and_the_error_estimate_says_so():
    # ReLU kinks make the integrand only piecewise smooth: errors of order h², which the coset check sees.
    model = Tiny(sigma=0.3, relu=True, seed=1)
    x = model.sample(6, seed=4)
    res = inference.quadrature(model.decode, model.pairs, model.log_lik, x)
    fine = inference.quadrature(model.decode, model.pairs, model.log_lik, x, tol=0.005)
    assert res.converged.all() and fine.converged.all()
    sd = fine.cov.diagonal(dim1=-2, dim2=-1).sqrt()
    half = 8 * sd.max(-1, keepdim=True).values
    exact = brute_force(model, x, fine.mean - half, fine.mean + half, 501)       # spacing 0.03 s.d.
    err, err_fine = (res.log_px - exact).abs(), (fine.log_px - exact).abs()
    assert (err <= res.error + 1e-4).all() and (err_fine <= fine.error + 1e-4).all()
    assert err.max() > 1e-4 and err_fine.max() < err.max() / 3 and fine.error.max() < res.error.max()


def test_a_second_mode_gets_its_own_grid_and_nothing_is_counted_twice():
    # f(z) = f(−z): the posterior has two mirror-image modes of equal mass. Where they are narrow, each gets a
    # local grid and log p(x) = log 2 + the log mass near one mode (brute force on a fine window that does
    # not reach the other); where they are wide, the coarse grid alone is accurate.
    model = Tiny(sigma=0.3, even=True, seed=3)
    x = model.sample(4, seed=2)
    res = inference.quadrature(model.decode, model.pairs, model.log_lik, x)
    assert res.converged.all() and (res.outside < 1e-6).all()
    two = res.modes == 2
    assert two.any() and (res.modes[~two] == 0).all()
    half = 12 * res.cov[two].diagonal(dim1=-2, dim2=-1).sqrt().max(-1, keepdim=True).values
    assert ((2 * res.mean[two].abs() > half).any(-1)).all()                # the window misses the mirror mode
    exact = math.log(2) + brute_force(model, x[two], res.mean[two] - half, res.mean[two] + half, 801)
    torch.testing.assert_close(res.log_px[two], exact, atol=1e-3, rtol=0)
    if (~two).any():
        plain = brute_force(model, x[~two], torch.full((4, 2), -6.0), torch.full((4, 2), 6.0), 601)
        torch.testing.assert_close(res.log_px[~two], plain, atol=1e-3, rtol=0)
    # With one local grid only, the mirror mode is left to the coarse grid, which holds half of p(x).
    one = inference.quadrature(model.decode, model.pairs, model.log_lik, x[two], modes=1)
    torch.testing.assert_close(one.outside, torch.full_like(one.outside, 0.5), atol=0.1, rtol=0)
    assert (one.log_px - exact).abs().max() > 0.05


def test_log_marginal_quadrature_is_the_quadrature_log_px_and_single_precision_is_close():
    model = LinearGaussian(0.03, (1.0, 3.0))
    x = model.sample(8)
    log_px = inference.log_marginal_quadrature(model.decode, model.pairs, model.log_lik, x, coarse=128)
    torch.testing.assert_close(log_px, model.log_px(x), atol=1e-3, rtol=0)
    model.w, model.b = model.w.float(), model.b.float()
    log_px32 = inference.log_marginal_quadrature(model.decode, model.pairs, model.log_lik, x.float())
    assert log_px32.dtype == torch.float32
    torch.testing.assert_close(log_px32.double(), model.log_px(x), atol=2e-3, rtol=0)


def test_posterior_grid_is_the_true_posterior_density():
    model = LinearGaussian(0.1, (1.0, 2.0))
    x = model.sample(3)
    res = inference.quadrature(model.decode, model.pairs, model.log_lik, x)
    mu, logvar = model.posterior(x)
    q_mu, q_logvar = mu + 0.1, logvar + 1.0                                 # a wider, shifted q
    grid = inference.posterior_grid(model.decode, model.log_lik, x, q_mu, q_logvar, res.mean, res.cov, res.log_px, n=48)
    z = torch.stack(torch.broadcast_tensors(grid.z1[:, None, :], grid.z2[:, :, None]), -1)   # [B, n, n, 2]
    true = torch.distributions.Normal(mu[:, None, None], (0.5 * logvar).exp()[:, None, None]).log_prob(z).sum(-1)
    torch.testing.assert_close(grid.log_post, true, atol=1e-6, rtol=0)
    q = torch.distributions.Normal(q_mu[:, None, None], (0.5 * q_logvar).exp()[:, None, None]).log_prob(z).sum(-1)
    torch.testing.assert_close(grid.log_q, q, atol=1e-9, rtol=0)
    # The window shows both: ± 4 s.d. of q (the wider) around q's mean.
    assert torch.allclose(grid.z1[:, 0], (q_mu - 4 * (0.5 * q_logvar).exp())[:, 0])
    # Self-normalised on the grid when log p(x) is not given.
    own = inference.posterior_grid(model.decode, model.log_lik, x, q_mu, q_logvar, res.mean, res.cov, n=48)
    torch.testing.assert_close(own.log_post, true, atol=1e-3, rtol=0)


def test_iwae_with_the_true_posterior_as_proposal_is_exact():
    # q = p(z|x) makes every weight p(x, z)/q(z|x) equal to p(x): every bound and the ELBO are log p(x)
    # without noise. The closed-form-KL ELBO is right only on average: its log p(x|z) still varies.
    model = LinearGaussian(0.1, (1.0, 2.0))
    x = model.sample(5)
    mu, logvar = model.posterior(x)
    b = inference.iwae_bounds(model.decode, model.log_lik, x, mu, logvar, ks=(1, 10, 100),
                              generator=torch.Generator().manual_seed(0))
    for est in (*b.iwae.values(), b.elbo):
        torch.testing.assert_close(est, model.log_px(x), atol=1e-8, rtol=0)
    assert (b.elbo_kl - model.log_px(x)).abs().max() > 1e-3
    torch.testing.assert_close(b.elbo_kl.mean(), model.log_px(x).mean(), atol=0.1, rtol=0)


def test_iwae_bounds_rise_with_k_towards_the_quadrature_log_px():
    model = Tiny(sigma=0.3)
    x = model.sample(16)
    res = inference.quadrature(model.decode, model.pairs, model.log_lik, x)
    # A Gaussian q near the posterior but not it: diagonal, 1.5x wide, shifted by half a s.d.
    sd = res.cov.diagonal(dim1=-2, dim2=-1).sqrt()
    mu, logvar = res.mean + 0.5 * sd, (1.5 * sd).log() * 2
    b = inference.iwae_bounds(model.decode, model.log_lik, x, mu, logvar, generator=torch.Generator().manual_seed(0))
    ks = sorted(b.iwae)
    assert ks == [1, 10, 100, 1000]
    for small, large in zip(ks, ks[1:]):                     # nested blocks: monotone for every image
        assert (b.iwae[large] >= b.iwae[small] - 1e-12).all()
    torch.testing.assert_close(b.iwae[1], b.elbo)
    # L_1000 is within 0.03 nats of log p(x) on average and below it. Per image the estimate scatters by
    # ±0.05 and more (q's tails are lighter than these skewed posteriors, correlated up to 0.9).
    gap = res.log_px - b.iwae[1000]
    assert 0 <= gap.mean() < 0.03 and gap.abs().max() < 0.2
    assert (res.log_px - b.iwae[1]).mean() > 10 * gap.mean()
    # Both ELBO estimators estimate the same number.
    torch.testing.assert_close(b.elbo_kl.mean(), b.elbo.mean(), atol=0.02, rtol=0)


def test_iwae_bounds_are_deterministic_and_independent_of_chunking():
    model = Tiny(sigma=0.3)
    x = model.sample(5)
    mu, logvar = torch.zeros(5, 2, dtype=torch.float64), torch.full((5, 2), -2.0, dtype=torch.float64)
    run = lambda rows: inference.iwae_bounds(model.decode, model.log_lik, x, mu, logvar, ks=(1, 7, 50), rows=rows,
                                             generator=torch.Generator().manual_seed(3))
    a, b = run(importance.ROWS), run(13)   # other shapes: equal up to round-off
    for k in (1, 7, 50):
        torch.testing.assert_close(a.iwae[k], b.iwae[k], atol=1e-12, rtol=0)
    torch.testing.assert_close(a.elbo_kl, b.elbo_kl, atol=1e-12, rtol=0)


def test_fitting_a_local_gaussian_closes_the_gap_when_the_posterior_is_gaussian():
    # Cremer et al. (2018): with a Gaussian true posterior the best q has no approximation gap; starting
    # from a poor q (3 s.d. off, 7x too wide), the amortisation gap is what the fit recovers.
    model = LinearGaussian(0.05, (1.0, 2.0))
    x = model.sample(8)
    mu, logvar = model.posterior(x)
    mu0, logvar0 = mu + 3 * (0.5 * logvar).exp(), logvar + 4.0
    g = torch.Generator().manual_seed(0)
    mu_f, logvar_f, elbo_f = inference.fit_local_gaussian(model.decode, model.log_lik, x, mu0, logvar0, generator=g)
    torch.testing.assert_close(mu_f, mu, atol=0.05 * (0.5 * logvar).exp().min().item(), rtol=0)
    torch.testing.assert_close(logvar_f, logvar, atol=0.05, rtol=0)
    elbo0 = inference.elbo(model.decode, model.log_lik, x, mu0, logvar0, generator=g)
    gaps = inference.gaps(model.log_px(x), elbo_f, elbo0)
    assert gaps["approximation"].abs().max() < 5e-3
    assert (gaps["amortisation"] > 1.0).all()
    torch.testing.assert_close(gaps["inference"], gaps["approximation"] + gaps["amortisation"])


def test_fitting_is_deterministic_and_leaves_the_decoder_alone():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, D)).double()
    log_lik, _ = gaussian_log_lik(0.3)
    x = torch.randn(4, D, dtype=torch.float64)
    mu0, logvar0 = torch.zeros(4, 2, dtype=torch.float64), torch.full((4, 2), -1.0, dtype=torch.float64)
    before = [p.clone() for p in net.parameters()]
    fit = lambda: inference.fit_local_gaussian(net, log_lik, x, mu0, logvar0, steps=50, eval_samples=100,
                                               generator=torch.Generator().manual_seed(1))
    a, b = fit(), fit()
    for ta, tb in zip(a, b):
        assert torch.equal(ta, tb)
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before))
    elbo0 = inference.elbo(net, log_lik, x, mu0, logvar0, samples=100, generator=torch.Generator().manual_seed(2))
    assert (a[2] > elbo0).all()


def test_bad_arguments_are_named():
    model = LinearGaussian(0.1)
    x = model.sample(3)
    mu = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ConfigError, match=r"mu.shape = \(2, 2\): expected \[3, d\]"):
        inference.iwae_bounds(model.decode, model.log_lik, x, mu[:2], mu[:2])
    with pytest.raises(ConfigError, match="ks = \\(0,\\)"):
        inference.iwae_bounds(model.decode, model.log_lik, x, mu, mu, ks=(0,))
    with pytest.raises(ConfigError, match="tol = 2"):
        inference.quadrature(model.decode, model.pairs, model.log_lik, x, tol=2)
    with pytest.raises(ConfigError, match="box = 3"):
        inference.quadrature(model.decode, model.pairs, model.log_lik, x, box=3)
    with pytest.raises(ConfigError, match="mu.shape = \\(3, 3\\): expected \\[3, 2\\]"):
        inference.posterior_grid(model.decode, model.log_lik, x, torch.zeros(3, 3), torch.zeros(3, 3), mu, None)
    with pytest.raises(ConfigError, match="x.shape"):
        inference.quadrature(model.decode, model.pairs, model.log_lik, x[0])


def test_real_digits_with_a_full_size_relu_decoder(mnist_root):
    # 8 MNIST test digits, the study's 2-128-256-512-784 decoder (random, its last layer scaled so that
    # posteriors are as narrow as a trained model's, s.d. ~0.015) and the Bernoulli likelihood object.
    import torch.nn.functional as F

    from vaelab.data.mnist import load_split
    from vaelab.models.layers import mlp
    from vaelab.models.likelihoods import Bernoulli

    x = load_split(mnist_root, "test", 8).images
    torch.manual_seed(0)
    decoder = mlp([2, 128, 256, 512, 784])
    with torch.no_grad():
        decoder[-1].weight.mul_(300)
    log_lik = Bernoulli().log_prob
    pairs = lambda out, x: x @ out.T - F.softplus(out).sum(-1)        # Σ x·l − softplus(l): the same density
    res = inference.quadrature(decoder, pairs, log_lik, x, coarse=128)
    assert res.converged.all() and (res.modes >= 1).all() and (res.error < 0.05).all()
    sd = res.cov.diagonal(dim1=-2, dim2=-1).sqrt()
    assert (sd < 0.079).all()                                             # narrower than the coarse spacing
    b = inference.iwae_bounds(decoder, log_lik, x, res.mean, (1.5 * sd).log() * 2, ks=(1000,),
                              generator=torch.Generator().manual_seed(0))
    gap = res.log_px - b.iwae[1000]
    assert gap.abs().max() < 0.1 and gap.mean().abs() < 0.02
