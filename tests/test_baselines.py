"""The no-latent baselines: uniform is exactly 8 bits/dim, a histogram per position beats one for all positions,
and EM's mixture of Bernoullis climbs and beats independent pixels on held-out binarised digits."""

from __future__ import annotations

import pytest
import torch

from vaelab.data.mnist import load_split
from vaelab.data.spaces import binarize
from vaelab.measures import baselines as bl


@pytest.fixture(scope="module")
def digits(mnist_root) -> tuple[torch.Tensor, torch.Tensor]:
    return load_split(mnist_root, "train", 3000).images, load_split(mnist_root, "test", 500).images


def test_uniform_is_eight_bits_per_dim(digits) -> None:
    _, test = digits
    assert bl.summary(bl.uniform_nll(test), True)["bits_per_dim"] == pytest.approx(8.0)


def test_histograms_rank_below_uniform_and_smoothing_keeps_every_level_possible(digits) -> None:
    train, test = digits
    hist, per_pixel = bl.fit_histogram(train, False), bl.fit_histogram(train, True)
    assert per_pixel.shape == (784, 256) and torch.isfinite(per_pixel).all() and torch.isfinite(hist).all()
    torch.testing.assert_close(per_pixel.exp().sum(1), torch.ones(784, dtype=torch.float64))
    one = bl.to_bits_per_dim(bl.histogram_nll(hist, test)).mean()
    each = bl.to_bits_per_dim(bl.histogram_nll(per_pixel, test)).mean()
    assert each < one < 8.0
    # A level never seen at a position still has probability > 0 (add-one smoothing): a finite NLL.
    odd = torch.full((1, 784), 0.5)
    assert torch.isfinite(bl.histogram_nll(per_pixel, odd)).all()


def test_em_climbs_and_the_mixture_beats_independent_pixels(digits) -> None:
    train, test = digits
    gen = torch.Generator().manual_seed(0)
    train_bits, test_bits = binarize(train, gen), binarize(test, gen)
    log_pi, mu, history = bl.fit_mixture(train_bits, k=10, steps=15, seed=0)
    assert all(b >= a - 1e-3 for a, b in zip(history, history[1:])) and history[-1] > history[0]
    assert torch.isclose(log_pi.exp().sum(), torch.tensor(1.0))
    independent = bl.bernoulli_nll(bl.fit_bernoulli(train_bits), test_bits).mean()
    mixture = bl.mixture_nll(log_pi, mu, test_bits).mean()
    assert mixture < independent - 10          # nats per image, on held-out digits
