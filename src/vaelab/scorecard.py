"""What the evaluate stage measures for one trained model: the metrics of :mod:`vaelab.metrics` composed
by asking the model what it is (has a prior? a 2-D latent? conditional?), never by testing its kind.

JSON layout of one seed (nats per image unless said otherwise; keys a model cannot have are left out)::

    reconstruction: mse_per_image, mse_per_pixel     # decode(posterior mean), squared error
    elbo:           neg_elbo, recon, kl, kl_bits      # models with a prior: −ELBO = recon + KL
    iwae:           nll                               # models with a prior: −log p(x) bound, K samples
    latent:         knn_accuracy, silhouette, saturated_fraction (bounded latents)
    grid:           confident_fraction                # 2-d latents only

Settings (K, k of the kNN, grid size, threshold) are params, not metrics: see params.yaml `evaluate`.
"""

from __future__ import annotations

import math

import torch

from vaelab import classifier, metrics
from vaelab.config import EvaluateConfig
from vaelab.data import INPUT_DIM, Split
from vaelab.models.base import LatentModel

SATURATION = 0.01  # a code coordinate this close to its box's edge counts as saturated


@torch.no_grad()
def score(model: LatentModel, judge: torch.nn.Module, train: Split, test: Split, cfg: EvaluateConfig,
          seed: int) -> dict:
    """Every metric of one model on the test split (kNN fitted on the training split's codes)."""
    y_train, y_test = (train.labels, test.labels) if model.conditional else (None, None)
    z_train, z_test = metrics.codes(model, train.images, y_train), metrics.codes(model, test.images, y_test)
    mse = metrics.reconstruction_error(model, test.images, z_test, y_test).mean().item()
    out: dict = {"reconstruction": {"mse_per_image": mse, "mse_per_pixel": mse / INPUT_DIM}}
    if model.has_prior:
        gen = torch.Generator(model.device).manual_seed(seed)
        per_image = metrics.likelihood_bounds(model, test.images, y_test, cfg.iwae_samples, gen)
        lik = {k: v.mean().item() for k, v in per_image.items()}
        out["elbo"] = {"neg_elbo": lik["neg_elbo"], "recon": lik["recon"], "kl": lik["kl"],
                       "kl_bits": lik["kl"] / math.log(2)}
        out["iwae"] = {"nll": lik["iwae_nll"]}
    subset = torch.arange(len(z_test))
    if cfg.silhouette_size is not None and cfg.silhouette_size < len(z_test):
        subset = torch.randperm(len(z_test), generator=torch.Generator().manual_seed(seed))[:cfg.silhouette_size]
    out["latent"] = {
        "knn_accuracy": metrics.knn_accuracy(z_train, train.labels, z_test, test.labels, cfg.knn_k),
        "silhouette": metrics.silhouette(z_test[subset], test.labels[subset]),
    }
    if model.latent_box is not None:
        # A bounded code that sits on its box's edges has saturated (the post's AE collapses that way).
        low, high = model.latent_box
        edge = ((z_test - low < SATURATION) | (high - z_test < SATURATION)).any(1)
        out["latent"]["saturated_fraction"] = edge.to(torch.float32).mean().item()
    if model.cfg.latent_dim == 2 and not model.conditional:
        tiles = model.mean_image(model.latent_grid(cfg.grid_size).to(model.device))
        probs = classifier.predict_proba(judge, tiles)
        out["grid"] = {"confident_fraction": metrics.confident_fraction(probs, cfg.threshold)}
    return out


def mean_over_seeds(per_seed: list[dict]) -> dict:
    """The mean of every (nested) metric over seeds, in the same layout."""
    first = per_seed[0]
    return {k: mean_over_seeds([m[k] for m in per_seed]) if isinstance(v, dict) else sum(m[k] for m in per_seed) / len(per_seed)
            for k, v in first.items()}
