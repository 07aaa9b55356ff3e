"""The evaluation metrics: the importance-weighted bound on small trained VAEs (its exactness and convergence on
models with a known log p(x) are in tests/test_inference.py), and the latent-structure metrics on known cases."""

from __future__ import annotations

import math

import pytest
import torch

from vaelab import models
from vaelab.core.config import TrainConfig
from vaelab.data.mnist import Split, load_split
from vaelab.measures import importance, metrics
from vaelab.training.loop import fit


@pytest.fixture(scope="module")
def small_vaes(mnist_root) -> dict[str, tuple[models.LatentModel, torch.Tensor]]:
    """Two small VAEs trained briefly on the first 500 training images, and 200 test images."""
    train = load_split(mnist_root, "train", 500)
    test = load_split(mnist_root, "test")
    out = {}
    for likelihood in ("gaussian", "bernoulli"):
        model = models.build(models.spec_from_dict(
            {"kind": "vae", "likelihood": {"name": likelihood}, "hidden": [128, 64]}, "m"), seed=0)
        fit(model, train, Split(test.images[:200], test.labels[:200]), TrainConfig(epochs=8, batch_size=50, lr=2e-3),
            seed=0)
        out[likelihood] = (model, test.images[:200])
    return out


def weights(model: models.LatentModel, x: torch.Tensor, k: int, generator: torch.Generator):
    """log w and log p(x|z) [B, K] of an unconditional model, by the kernel the evaluation uses."""
    q = model.encode(x)
    log_lik = lambda z, idx: model.likelihood.log_prob(model.decode(z.reshape(-1, z.shape[-1])).view(*z.shape[:2], -1),
                                                       x[idx, None])
    return importance.log_weights(log_lik, q, importance.draw(q, k, generator))


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_iwae_bound_beats_the_elbo_and_tightens_with_k(small_vaes, likelihood: str) -> None:
    model, x = small_vaes[likelihood]
    result = metrics.likelihood_bounds(model, x, None, 200, torch.Generator().manual_seed(0), rows=3000)
    assert result["iwae_nll"].mean() < result["neg_elbo"].mean()
    torch.testing.assert_close(result["neg_elbo"], result["recon"] + result["kl"])
    assert (result["kl"] > 0).all()
    # Same seed, same normals; other rows are other matrix shapes, for which BLAS may pick other kernels: equal
    # up to round-off (bit for bit only at equal shapes, tests/test_importance.py).
    again = metrics.likelihood_bounds(model, x, None, 200, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again["iwae_nll"], result["iwae_nll"], rtol=1e-5, atol=1e-3)

    # On the same 200 samples, split into groups of K: the bound can only rise with K (Jensen).
    with torch.no_grad():
        log_w, _ = weights(model, x, 200, torch.Generator().manual_seed(1))
    est = importance.bounds(log_w, (1, 10, 50, 200))
    bounds = [est.iwae[k].mean().item() for k in (1, 10, 50, 200)]
    assert bounds == sorted(bounds) and bounds[-1] > bounds[0], bounds


def test_the_weights_use_the_models_own_likelihood(small_vaes) -> None:
    """log p(x|z) inside the bound is the likelihood object's normalised log_prob (one definition)."""
    model, x = small_vaes["gaussian"]
    with torch.no_grad():
        _, log_lik = weights(model, x[:3], 2, torch.Generator().manual_seed(0))
        z = model.encode(x[:3]).rsample(2, torch.Generator().manual_seed(0))
        want = torch.distributions.Normal(torch.sigmoid(model.decode(z)), 1.0).log_prob(x[:3, None]).sum(-1)
    torch.testing.assert_close(log_lik, want, rtol=1e-5, atol=1e-3)


def test_iwae_gain_over_the_elbo_with_fresh_samples(small_vaes) -> None:
    """The Bernoulli VAE's posterior gap is large enough to see K's effect with independent samples."""
    model, x = small_vaes["bernoulli"]
    nll = {k: metrics.likelihood_bounds(model, x, None, k, torch.Generator().manual_seed(k))["iwae_nll"].mean().item()
           for k in (1, 10, 200)}
    neg_elbo = metrics.likelihood_bounds(model, x, None, 200, torch.Generator().manual_seed(0))["neg_elbo"].mean().item()
    assert nll[200] < nll[10] - 0.2 < neg_elbo - 0.4, (nll, neg_elbo)
    assert nll[1] == pytest.approx(neg_elbo, abs=1.0)       # K = 1 is the ELBO, up to Monte-Carlo noise


# --- latent structure ------------------------------------------------------------------------------

def clusters(n: int, seed: int, radius: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten unit-variance blobs on a circle, at least 60 apart."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    angle = torch.arange(10) * (2 * math.pi / 10)
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres[y] + torch.randn(n, 2, generator=g), y


def test_knn_accuracy_separated_clusters_and_shuffled_labels() -> None:
    (z_tr, y_tr), (z_te, y_te) = clusters(3000, 0), clusters(2000, 1)
    assert metrics.knn_accuracy(z_tr, y_tr, z_te, y_te, k=5) > 0.99
    shuffled = y_tr[torch.randperm(len(y_tr), generator=torch.Generator().manual_seed(3))]
    assert abs(metrics.knn_accuracy(z_tr, shuffled, z_te, y_te, k=5) - 0.1) < 0.04


def test_knn_accuracy_is_the_brute_force_vote() -> None:
    # The k-d tree must pick the same neighbours as every distance computed (no ties in continuous codes).
    (z_tr, y_tr), (z_te, y_te) = clusters(1500, 2, radius=3.0), clusters(700, 3, radius=3.0)
    nearest = torch.cdist(z_te.double(), z_tr.double()).topk(7, dim=1, largest=False).indices
    votes = torch.zeros(len(z_te), 10).scatter_add_(1, y_tr[nearest], torch.ones(nearest.shape))
    expected = (votes.argmax(1) == y_te).double().mean().item()
    assert 0.3 < expected < 0.99   # overlapping clusters: the vote is neither trivial nor random
    assert metrics.knn_accuracy(z_tr, y_tr, z_te, y_te, k=7) == expected


def test_trustworthiness_ranks_an_ordered_embedding_above_a_shuffled_one() -> None:
    # Known answers: the images themselves as codes are perfectly trustworthy (1); the curve's own parameter
    # keeps neighbours (near 1); the same codes given to other images keep none (about 0.5).
    g = torch.Generator().manual_seed(7)
    t = torch.rand(600, generator=g)
    images = torch.stack([torch.cos(3 * t), torch.sin(3 * t), t, t ** 2], dim=1) @ torch.randn(4, 50, generator=g)
    assert metrics.trustworthiness(images, images, k=10) == pytest.approx(1.0)
    ordered = metrics.trustworthiness(images, t[:, None], k=10)
    shuffled = metrics.trustworthiness(images, t[torch.randperm(600, generator=g)][:, None], k=10)
    assert ordered > 0.95 and abs(shuffled - 0.5) < 0.1


def brute_force_silhouette(z: torch.Tensor, y: torch.Tensor) -> float:
    scores = []
    for i in range(len(z)):
        d = (z - z[i]).norm(dim=1)
        same = (y == y[i]) & (torch.arange(len(z)) != i)
        if not same.any():
            scores.append(0.0)
            continue
        a = d[same].mean()
        b = min(d[y == c].mean() for c in y.unique() if c != y[i])
        scores.append(((b - a) / max(a, b)).item())
    return sum(scores) / len(scores)


def test_silhouette() -> None:
    line = torch.tensor([[0.0, 0], [1, 0], [4, 0], [5, 0]])
    assert metrics.silhouette(line, torch.tensor([0, 0, 1, 1])) == pytest.approx((7 / 9 + 5 / 7) / 2)
    z, y = torch.randn(150, 2, generator=torch.Generator().manual_seed(0)), torch.randint(0, 4, (150,))
    y[0] = 7  # a singleton cluster scores 0
    assert metrics.silhouette(z, y) == pytest.approx(brute_force_silhouette(z, y), abs=1e-5)
    assert metrics.silhouette(*clusters(500, 0)) > 0.95
    with pytest.raises(ValueError, match="two clusters"):
        metrics.silhouette(z, torch.zeros(150, dtype=torch.long))


def test_confident_fraction() -> None:
    probs = torch.tensor([[0.95, 0.05], [0.5, 0.5], [0.1, 0.9]])
    assert metrics.confident_fraction(probs, 0.9) == pytest.approx(2 / 3)
    assert metrics.confident_fraction(probs, 0.96) == 0.0
