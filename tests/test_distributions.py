"""The posterior objects against the textbook densities they stand for, and the VAE's loss terms."""

from __future__ import annotations

import torch
from torch.distributions import Normal, kl_divergence

from vaelab import models
from vaelab.core.distributions import DiagonalGaussian, PointMass, standard_normal_log_prob

SMALL = {"hidden": [32, 16, 8]}


def vae(**cfg) -> models.LatentModel:
    return models.build(models.spec_from_dict({"kind": "vae", **SMALL, **cfg}, "m"), seed=0)


def test_closed_form_kl_matches_monte_carlo_and_torch():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3) * 0.5
    q = Normal(mu, (0.5 * logvar).exp())
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1).mean(0)
    exact = DiagonalGaussian(mu, logvar).kl()
    assert torch.allclose(exact, mc, atol=0.02)
    assert torch.allclose(exact, kl_divergence(q, Normal(0.0, 1.0)).sum(-1), atol=1e-5)


def test_log_prob_and_samples_of_the_posterior():
    mu, logvar = torch.randn(5, 2), torch.randn(5, 2)
    q = DiagonalGaussian(mu, logvar)
    z = q.rsample(7, torch.Generator().manual_seed(0))
    assert z.shape == (5, 7, 2)
    ref = Normal(mu[:, None], (0.5 * logvar).exp()[:, None]).log_prob(z).sum(-1)
    assert torch.allclose(q.log_prob(z), ref, atol=1e-5)
    assert torch.allclose(standard_normal_log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1), atol=1e-5)
    p = PointMass(mu)
    assert torch.equal(p.rsample(), mu) and torch.equal(p.kl(), torch.zeros(5))


def test_gradients_reach_the_encoder_through_the_sample():
    torch.manual_seed(3)
    model = vae(likelihood={"name": "bernoulli"})
    model.loss(torch.rand(8, 784))["recon"].backward()  # the reconstruction term alone: only via z
    first = model.encoder[0].weight.grad
    assert first is not None and first.abs().sum() > 0


def test_beta_weights_only_the_kl_term():
    x = torch.rand(8, 784)
    out = {}
    for beta in (1.0, 4.0):
        model = vae(beta=beta)
        torch.manual_seed(5)
        out[beta] = model.loss(x)
    assert torch.allclose(out[4.0]["loss"], out[1.0]["recon"] + 4.0 * out[1.0]["kl"])


def test_the_unit_gaussian_loss_is_half_the_squared_error_plus_its_constant():
    """The one definition of the reported loss: normalised, the Gaussian constant 784·½ log 2π included."""
    model = vae(likelihood={"name": "gaussian", "sigma": 1.0})
    out, x = torch.randn(4, 784), torch.rand(4, 784)
    half_se = 0.5 * (x - torch.sigmoid(out)).pow(2).sum(-1)
    assert torch.allclose(-model.likelihood.log_prob(out, x), half_se + 784 * 0.5 * torch.log(torch.tensor(2 * torch.pi)))
