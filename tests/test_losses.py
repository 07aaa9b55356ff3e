"""The loss functions against the textbook densities they stand for."""

from __future__ import annotations

import math

import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vaelab import losses
from vaelab.config import ModelConfig
from vaelab.models import build


def test_closed_form_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3) * 0.5
    q = Normal(mu, (0.5 * logvar).exp())
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1).mean(0)
    exact = losses.kl_std_normal(mu, logvar)
    assert torch.allclose(exact, mc, atol=0.02)
    assert torch.allclose(exact, kl_divergence(q, Normal(0.0, 1.0)).sum(-1), atol=1e-5)


def test_gaussian_term_is_the_unit_variance_nll_up_to_its_constant():
    torch.manual_seed(1)
    x, x_hat = torch.rand(5, 784), torch.rand(5, 784)
    nll = -Normal(x_hat, 1.0).log_prob(x).sum(-1)
    constant = 0.5 * 784 * math.log(2 * math.pi)
    assert torch.allclose(losses.gaussian_nll(x_hat, x) + constant, nll, atol=1e-3)
    assert torch.allclose(losses.gaussian_nll(x_hat, x), 0.5 * losses.squared_error(x_hat, x))


def test_bce_term_is_the_bernoulli_nll():
    torch.manual_seed(2)
    logits = torch.randn(5, 784) * 3
    x = (torch.rand(5, 784) > 0.5).float()
    assert torch.allclose(losses.bernoulli_nll(logits, x), -Bernoulli(logits=logits).log_prob(x).sum(-1), atol=1e-3)
    # Grey levels: the same cross-entropy formula, and finite even for extreme logits.
    grey, p = torch.rand(5, 784), torch.sigmoid(logits)
    manual = -(grey * p.log() + (1 - grey) * (1 - p).log()).sum(-1)
    assert torch.allclose(losses.bernoulli_nll(logits, grey), manual, rtol=1e-4)
    assert torch.isfinite(losses.bernoulli_nll(torch.full((1, 784), 1e4), torch.zeros(1, 784))).all()


def test_gradients_reach_the_encoder_through_the_sample():
    torch.manual_seed(3)
    model = build(ModelConfig(kind="vae", likelihood="bernoulli", hidden=[32, 16, 8]))
    model.loss(torch.rand(8, 784))["recon"].backward()  # the reconstruction term alone: only via z
    first = model.encoder[0].weight.grad
    assert first is not None and first.abs().sum() > 0


def test_beta_weights_only_the_kl_term():
    x = torch.rand(8, 784)
    out = {}
    for beta in (1.0, 4.0):
        torch.manual_seed(4)
        model = build(ModelConfig(kind="vae", hidden=[32, 16, 8], beta=beta))
        torch.manual_seed(5)
        out[beta] = model.loss(x)
    assert torch.allclose(out[4.0]["loss"], out[1.0]["recon"] + 4.0 * out[1.0]["kl"])
