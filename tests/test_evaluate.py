"""The evaluation metrics on cases with known answers, a small trained VAE, and the real pipeline."""

from __future__ import annotations

import json
import math

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import run, set_params
from vaelab import evaluate, losses, models
from vaelab.config import ModelConfig, TrainConfig
from vaelab.data import load_split
from vaelab.train import fit


# --- log p(x|z) and the IWAE bound ---------------------------------------------------------------

@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_decoder_log_likelihood_is_the_decoders_density(likelihood: str) -> None:
    torch.manual_seed(0)
    model = models.build(ModelConfig(kind="vae", likelihood=likelihood, hidden=[32])).eval()
    x, z = torch.rand(4, 784), torch.randn(4, 3, 2)
    with torch.no_grad():
        got = evaluate.decoder_log_likelihood(model)(z, x)
        logits = model.decoder_logits(z)
    if likelihood == "gaussian":  # a true density: torch's Normal, constant included
        want = torch.distributions.Normal(torch.sigmoid(logits), 1.0).log_prob(x[:, None]).sum(-1)
    else:
        want = -losses.bernoulli_nll(logits, x[:, None].expand_as(logits))
    assert got.shape == (4, 3)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-3)


def linear_gaussian(seed: int = 0, d: int = 2, dim: int = 6, sigma: float = 0.5):
    """p(z) = N(0, I), p(x|z) = N(Wz + c, sigma^2 I): log p(x) and the posterior in closed form.

    W has orthogonal columns, so the exact posterior is a diagonal Gaussian, as the encoder's is.
    """
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, d, generator=g, dtype=torch.float64))
    w, c = q * torch.tensor([2.0, 0.7], dtype=torch.float64), torch.randn(dim, generator=g, dtype=torch.float64)
    marginal = torch.distributions.MultivariateNormal(c, w @ w.T + sigma**2 * torch.eye(dim, dtype=torch.float64))
    x = marginal.sample((20,))
    post_var = 1 / (1 + (w**2).sum(0) / sigma**2)               # [d]
    post_mu = (x - c) @ w / sigma**2 * post_var                # [N, d]

    def log_lik(z: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Normal(z @ w.T + c, sigma).log_prob(xb[:, None]).sum(-1)

    return x, marginal.log_prob(x), post_mu, post_var.log().expand_as(post_mu), log_lik


def test_iwae_is_exact_with_the_true_posterior() -> None:
    x, log_px, mu, logvar, log_lik = linear_gaussian()
    log_w, _ = evaluate.importance_log_weights(x, mu, logvar, log_lik, k=3, generator=torch.Generator().manual_seed(1))
    # every importance weight equals p(x) exactly, so even K = 1 recovers log p(x)
    torch.testing.assert_close(log_w, log_px[:, None].expand_as(log_w), rtol=0, atol=1e-9)
    torch.testing.assert_close(evaluate.iwae_bound(log_w), log_px, rtol=0, atol=1e-9)


def test_iwae_converges_to_log_px_from_a_poor_proposal() -> None:
    x, log_px, mu, logvar, log_lik = linear_gaussian()
    mu, logvar = mu + 0.4, logvar + math.log(3.0)              # a wrong, too wide q(z|x)
    gen = torch.Generator().manual_seed(2)
    bounds = {k: evaluate.iwae_bound(evaluate.importance_log_weights(x, mu, logvar, log_lik, k, gen)[0])
              for k in (1, 10, 5000)}
    gaps = {k: (log_px - b).mean().item() for k, b in bounds.items()}
    assert gaps[1] > gaps[10] > gaps[5000] >= -0.01, gaps    # a lower bound that tightens with K
    assert gaps[1] > 0.3                                       # the ELBO of this q is visibly loose ...
    assert abs(gaps[5000]) < 0.02                              # ... the K = 5000 bound is on log p(x)


@pytest.fixture(scope="module")
def small_vaes(mnist_root) -> dict[str, tuple[models.VAE, torch.Tensor]]:
    """Two small VAEs trained briefly on the first 500 training images, and 200 test images."""
    train = load_split(mnist_root, "train", 500).images
    test = load_split(mnist_root, "test").images[:200]
    out = {}
    for likelihood in ("gaussian", "bernoulli"):
        model = models.build(ModelConfig(kind="vae", likelihood=likelihood, hidden=[128, 64]))
        fit(model, train, test, TrainConfig(epochs=8, batch_size=50, lr=2e-3), seed=0)
        out[likelihood] = (model, test)
    return out


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_iwae_bound_beats_the_elbo_and_tightens_with_k(small_vaes, likelihood: str) -> None:
    model, x = small_vaes[likelihood]
    result = evaluate.vae_likelihood(model, x, 200, torch.Generator().manual_seed(0), rows=3000)
    assert result["iwae_nll"].mean() < result["neg_elbo"].mean()
    torch.testing.assert_close(result["neg_elbo"], result["recon"] + result["kl"])
    assert (result["kl"] > 0).all()
    again = evaluate.vae_likelihood(model, x, 200, torch.Generator().manual_seed(0))
    assert torch.equal(again["iwae_nll"], result["iwae_nll"])  # same seed, same numbers (any chunking)

    # On the same 200 samples, split into groups of K: the bound can only rise with K (Jensen).
    with torch.no_grad():
        mu, logvar = model.encode(x)
        log_w, _ = evaluate.importance_log_weights(x, mu, logvar, evaluate.decoder_log_likelihood(model), 200,
                                                   torch.Generator().manual_seed(1))
    bounds = [evaluate.iwae_bound(log_w.reshape(len(x) * 200 // k, k)).mean().item() for k in (1, 10, 50, 200)]
    assert bounds == sorted(bounds) and bounds[-1] > bounds[0], bounds


def test_iwae_gain_over_the_elbo_with_fresh_samples(small_vaes) -> None:
    """The Bernoulli VAE's posterior gap is large enough to see K's effect with independent samples."""
    model, x = small_vaes["bernoulli"]
    nll = {k: evaluate.vae_likelihood(model, x, k, torch.Generator().manual_seed(k))["iwae_nll"].mean().item()
           for k in (1, 10, 200)}
    neg_elbo = evaluate.vae_likelihood(model, x, 200, torch.Generator().manual_seed(0))["neg_elbo"].mean().item()
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
    assert evaluate.knn_accuracy(z_tr, y_tr, z_te, y_te, k=5, chunk=333) > 0.99
    shuffled = y_tr[torch.randperm(len(y_tr), generator=torch.Generator().manual_seed(3))]
    assert abs(evaluate.knn_accuracy(z_tr, shuffled, z_te, y_te, k=5) - 0.1) < 0.04


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
    assert evaluate.silhouette(line, torch.tensor([0, 0, 1, 1])) == pytest.approx((7 / 9 + 5 / 7) / 2)
    z, y = torch.randn(150, 2, generator=torch.Generator().manual_seed(0)), torch.randint(0, 4, (150,))
    y[0] = 7  # a singleton cluster scores 0
    assert evaluate.silhouette(z, y, chunk=17) == pytest.approx(brute_force_silhouette(z, y), abs=1e-5)
    assert evaluate.silhouette(*clusters(500, 0)) > 0.95
    with pytest.raises(ValueError, match="two clusters"):
        evaluate.silhouette(z, torch.zeros(150, dtype=torch.long))


def test_confident_fraction() -> None:
    probs = torch.tensor([[0.95, 0.05], [0.5, 0.5], [0.1, 0.9]])
    assert evaluate.confident_fraction(probs, 0.9) == pytest.approx(2 / 3)
    assert evaluate.confident_fraction(probs, 0.96) == 0.0


# --- the pipeline ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_pipeline_writes_eval_metrics_and_logs_them_to_the_training_runs(project) -> None:
    set_params(project, evaluate__iwae_samples=4, evaluate__silhouette_size=500, evaluate__grid_size=5,
               classifier__epochs=3)
    run(["git", "commit", "-qam", "small evaluation"], project)
    run(["dvc", "repro"], project)

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    files = next(iter(shown.values()))["data"]
    evals = {name: files[f"metrics/eval/{name}.json"]["data"] for name in ("ae", "vae_mse", "vae_bce")}
    assert files["metrics/classifier.json"]["data"]["test_accuracy"] > 0.7
    assert "iwae" not in evals["ae"] and "elbo" not in evals["ae"]
    for name, m in evals.items():
        assert m["reconstruction"]["mse_per_pixel"] == pytest.approx(m["reconstruction"]["mse_per_image"] / 784)
        assert 0 <= m["latent"]["knn_accuracy"] <= 1 and -1 <= m["latent"]["silhouette"] <= 1
        assert m["latent"]["silhouette_points"] == 500 and 0 <= m["grid"]["confident_fraction"] <= 1
    for name in ("vae_mse", "vae_bce"):
        m = evals[name]
        assert m["iwae"]["samples"] == 4 and math.isfinite(m["iwae"]["nll"])
        assert m["iwae"]["nll"] < m["elbo"]["neg_elbo"]
        assert m["elbo"]["kl_bits"] == pytest.approx(m["elbo"]["kl"] / math.log(2))

    # the numbers are on each model's training run, found as `tracking.latest_training_run` finds it
    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.search_runs([client.get_experiment_by_name("vaelab").experiment_id],
                                "tags.model = 'vae_bce'")[0].info.run_id
    logged = client.get_run(run_id).data.metrics
    assert logged["eval.iwae.nll"] == pytest.approx(evals["vae_bce"]["iwae"]["nll"])
    assert logged["eval.latent.knn_accuracy"] == pytest.approx(evals["vae_bce"]["latent"]["knn_accuracy"])

    # without its training run the stage fails clearly and leaves the old metrics alone
    (project / "mlflow.db").unlink()
    before = (project / "metrics" / "eval" / "ae.json").read_text()
    proc = run(["python", "stages/evaluate.py", "--model", "ae"], project, check=False, PYTHONPATH="src")
    assert proc.returncode == 1 and "no finished MLflow run tagged model=ae" in proc.stderr
    assert (project / "metrics" / "eval" / "ae.json").read_text() == before
