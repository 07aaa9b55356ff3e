"""Each likelihood against torch.distributions, normalisation on a 1-D grid, finite gradients at the edges, the
all-pairs fast path against log_prob, the optimal σ in closed form, and the bits/dim yardstick."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

from vaelab.core.errors import ConfigError
from vaelab.data.spaces import dequantize
from vaelab.models import likelihoods


@pytest.fixture(autouse=True)
def float64():
    """Compare in float64 (torch.distributions' references too); restored for the other test modules."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def lik(name: str, **cfg) -> likelihoods.Likelihood:
    return likelihoods.build({"name": name, **cfg}).double()


def x_for(name: str, shape) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g)
    if name == "bernoulli":
        return (x > 0.5).double()
    if name == "beta":
        return x.clamp(1e-3, 1 - 1e-3)
    return x


def reference(name: str, out: torch.Tensor, x: torch.Tensor, l) -> torch.Tensor:
    if name in ("gaussian", "gaussian_learned", "gaussian_optimal"):
        sigma = l.log_sigma(torch.sigmoid(out), x).exp()
        return D.Normal(torch.sigmoid(out), sigma).log_prob(x).sum(-1)
    if name == "continuous_bernoulli":
        return D.ContinuousBernoulli(logits=out).log_prob(x).sum(-1)
    if name == "bernoulli":
        return D.Bernoulli(logits=out).log_prob(x).sum(-1)
    a, b = l._ab(out)
    return D.Beta(a, b).log_prob(x).sum(-1)


@pytest.mark.parametrize("name", sorted(likelihoods.LIKELIHOODS))
def test_log_prob_matches_torch_distributions(name: str) -> None:
    l = lik(name).eval()
    p = l.params_per_pixel
    out = torch.randn(5, p * 20, generator=torch.Generator().manual_seed(1)) * 3
    x = x_for(name, (5, 20))
    assert torch.allclose(l.log_prob(out, x), reference(name, out, x, l), atol=1e-5, rtol=1e-7)


def test_continuous_bernoulli_near_one_half() -> None:
    l = lik("continuous_bernoulli")
    lam = torch.linspace(0.499, 0.501, 41)
    out = torch.logit(lam)[:, None]
    x = torch.linspace(0, 1, 41)[:, None]
    ref = D.ContinuousBernoulli(probs=lam[:, None])
    assert torch.allclose(l.log_prob(out, x), ref.log_prob(x).sum(-1), atol=1e-5)
    assert torch.allclose(l.mean(out), ref.mean, atol=1e-5)
    far = torch.tensor([[-6.0], [-0.5], [0.3], [4.0]])  # the closed form, off the Taylor zone
    assert torch.allclose(l.mean(far), D.ContinuousBernoulli(logits=far).mean, atol=1e-6)


@pytest.mark.parametrize("name", ["gaussian", "gaussian_learned", "continuous_bernoulli", "beta"])
def test_density_integrates_to_one(name: str) -> None:
    l = lik(name, **({"sigma": 0.3} if name == "gaussian" else {})).eval()
    grid = torch.linspace(-6, 7, 200_001) if name.startswith("gaussian") else torch.linspace(1e-7, 1 - 1e-7, 200_001)
    out = torch.full((l.params_per_pixel,), 0.7)
    if name == "beta":
        out = torch.tensor([0.4, 1.3])  # α < 1: a density unbounded at 0, still integrable
        grid = torch.linspace(0, 1, 2_000_001)[1:-1]
    dens = torch.exp(l.log_prob(out.expand(len(grid), -1), grid[:, None]))
    total = torch.trapezoid(dens, grid).item()
    assert total == pytest.approx(1.0, abs=2e-3 if name == "beta" else 1e-4)


def test_bernoulli_sums_to_one() -> None:
    l = lik("bernoulli")
    out = torch.tensor([[0.3]])
    assert (l.log_prob(out, torch.zeros(1, 1)).exp() + l.log_prob(out, torch.ones(1, 1)).exp()).item() == pytest.approx(1)


@pytest.mark.parametrize("name", ["continuous_bernoulli", "bernoulli", "gaussian", "gaussian_learned"])
def test_gradients_are_finite_at_one_half_and_at_the_edges(name: str) -> None:
    l = lik(name)
    out = torch.zeros(3, 4, requires_grad=True)  # λ = ½ exactly
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.5, 0.0, 1.0, 0.2], [1.0, 1.0, 0.0, 0.0]])
    l.log_prob(out, x).sum().backward()
    assert torch.isfinite(out.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in l.parameters())


@pytest.mark.parametrize("name", sorted(likelihoods.LIKELIHOODS))
def test_pairs_equal_log_prob_over_all_pairs(name: str) -> None:
    l = lik(name).eval()
    out = torch.randn(7, l.params_per_pixel * 30, generator=torch.Generator().manual_seed(2))
    x = x_for(name, (4, 30))
    pairs = l.log_prob_pairs(out, x)
    brute = torch.stack([l.log_prob(out, xi.expand(7, -1)) for xi in x])
    assert pairs.shape == (4, 7) and torch.allclose(pairs, brute, atol=1e-8)


def test_optimal_sigma_is_the_closed_form_and_eval_uses_the_running_value() -> None:
    l = lik("gaussian_optimal", min_log_sigma=-20.0, momentum=1.0)
    out, x = torch.randn(8, 30), torch.rand(8, 30)
    mse = (x - torch.sigmoid(out)).pow(2).mean()
    l.train()
    lp = l.log_prob(out, x)
    n = x.numel()
    closed = -0.5 * n * (1 + math.log(2 * math.pi) + mse.log()) / 8  # log-lik at σ*² = mse, per image
    # (rel 1e-6: the soft floor at log σ = −20 shifts log σ by softplus's e^−(log σ + 20) ≈ 6e-9)
    assert lp.mean().item() == pytest.approx(closed.item(), rel=1e-6)
    assert l.running_log_sigma.exp().item() == pytest.approx(mse.sqrt().item(), rel=1e-6)  # momentum 1: the batch's
    l.eval()
    other = torch.rand(8, 30)
    sigma = l.running_log_sigma.exp()
    assert torch.allclose(l.log_prob(out, other), D.Normal(torch.sigmoid(out), sigma).log_prob(other).sum(-1))


def test_learned_sigma_is_a_parameter_with_a_soft_floor() -> None:
    l = lik("gaussian_learned", min_log_sigma=-3.0)
    assert [n for n, _ in l.named_parameters()] == ["raw_log_sigma"]
    with torch.no_grad():
        l.raw_log_sigma.fill_(-50.0)
    assert l.log_sigma(None, None).item() == pytest.approx(-3.0, abs=1e-6)
    assert l.diagnostics()["sigma"] == pytest.approx(math.exp(-3.0), rel=1e-5)


def test_beta_refuses_exact_zeros_and_ones() -> None:
    with pytest.raises(ValueError, match="dequantised"):
        likelihoods.Beta.check(torch.tensor([[0.0, 0.5]]))
    likelihoods.Beta.check(torch.tensor([[1e-3, 0.5]]))  # inside: fine
    assert models_refuse_beta_on_grey()


def models_refuse_beta_on_grey() -> bool:
    from vaelab import models

    with pytest.raises(ConfigError, match=r"models\.m\.data = 'grey'.*beta.*dequantized"):
        models.spec_from_dict({"kind": "vae", "likelihood": {"name": "beta"}, "data": "grey"}, "models.m")
    return True


def test_uniform_density_is_eight_bits_per_dim_and_unit_gaussian_cannot_beat_9_33(mnist_root) -> None:
    assert likelihoods.bits_per_dim(0.0) == pytest.approx(8.0)
    from vaelab.data.mnist import load_split

    x = dequantize(load_split(mnist_root, "test").images[:100].double(), torch.Generator().manual_seed(0))
    l = lik("gaussian", sigma=1.0)
    best = l.log_prob(torch.logit(x.clamp(1e-6, 1 - 1e-6)), x)  # the mean equal to the pixel: the best it can do
    assert likelihoods.bits_per_dim(-best.mean().item()) == pytest.approx(9.33, abs=0.01)


def test_dequantize_is_strictly_inside_and_keeps_the_pixel_value() -> None:
    k = torch.arange(256, dtype=torch.float64).repeat(50)
    xt = dequantize(k / 255, torch.Generator().manual_seed(0))
    assert (xt > 0).all() and (xt < 1).all()
    assert torch.equal(torch.floor(256 * xt), k)
    assert torch.equal(xt, dequantize(k / 255, torch.Generator().manual_seed(0)))


def test_build_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"likelihood\.name = 'laplace': expected one of \['bernoulli', 'beta'"):
        likelihoods.build({"name": "laplace"})
    with pytest.raises(ConfigError, match=r"models\.m\.likelihood\.sigmma: unknown key"):
        likelihoods.build({"name": "gaussian", "sigmma": 1.0}, "models.m.likelihood")
    with pytest.raises(ConfigError, match=r"sigma = -1.0: expected > 0"):
        likelihoods.build({"name": "gaussian", "sigma": -1.0})
