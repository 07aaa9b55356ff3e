"""The `evaluate` stage's I/O around :mod:`vaelab.evaluate`: a trained model and the classifier in,
``metrics/eval/<name>.json`` and metrics on the model's MLflow training run out.

JSON layout (nats per image unless said otherwise; keys a model cannot have are left out)::

    reconstruction: mse_per_image, mse_per_pixel     # decode(mean code): AE z, VAE mu
    elbo:           neg_elbo, recon, kl, kl_bits      # VAEs: -ELBO = recon + KL (recon by Monte Carlo)
    iwae:           nll, samples                      # VAEs: -log p(x) bound with K = samples
    latent:         knn_accuracy, knn_k, silhouette, silhouette_points
    grid:           confident_fraction, threshold, size   # 2-d latents only
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch

from vaelab import classifier, evaluate, models, tracking
from vaelab.config import EvaluateConfig, Params, flatten
from vaelab.data import INPUT_DIM, Split, load_split
from vaelab.files import write_atomic
from vaelab.latent import encode_mean, manifold_grid
from vaelab.train import resolve_device

log = logging.getLogger(__name__)


def score(model: models.Model, judge: torch.nn.Module, train: Split, test: Split, cfg: EvaluateConfig,
          seed: int) -> dict:
    """Every metric of one model on the test split (kNN fitted on the training split's codes)."""
    z_train, z_test = encode_mean(model, train.images), encode_mean(model, test.images)
    mse = evaluate.reconstruction_error(model, test.images, z_test).mean().item()
    out: dict = {"reconstruction": {"mse_per_image": mse, "mse_per_pixel": mse / INPUT_DIM}}
    if isinstance(model, models.VAE):
        gen = torch.Generator(next(model.parameters()).device).manual_seed(seed)
        per_image = evaluate.vae_likelihood(model, test.images, cfg.iwae_samples, gen)
        lik = {k: v.mean().item() for k, v in per_image.items()}
        out["elbo"] = {"neg_elbo": lik["neg_elbo"], "recon": lik["recon"], "kl": lik["kl"],
                       "kl_bits": lik["kl"] / math.log(2)}
        out["iwae"] = {"nll": lik["iwae_nll"], "samples": cfg.iwae_samples}
    subset = torch.arange(len(z_test))
    if cfg.silhouette_size is not None and cfg.silhouette_size < len(z_test):
        subset = torch.randperm(len(z_test), generator=torch.Generator().manual_seed(seed))[:cfg.silhouette_size]
    out["latent"] = {
        "knn_accuracy": evaluate.knn_accuracy(z_train, train.labels, z_test, test.labels, cfg.knn_k),
        "knn_k": cfg.knn_k,
        "silhouette": evaluate.silhouette(z_test[subset], test.labels[subset]),
        "silhouette_points": len(subset),
    }
    if model.cfg.latent_dim == 2:
        with torch.no_grad():
            tiles = model.decode(manifold_grid(model.cfg.kind, cfg.grid_size).to(next(model.parameters()).device))
        probs = classifier.predict_proba(judge, tiles)
        out["grid"] = {"confident_fraction": evaluate.confident_fraction(probs, cfg.threshold),
                       "threshold": cfg.threshold, "size": cfg.grid_size}
    return out


def evaluate_model(params: Params, name: str, root: Path = Path(".")) -> dict:
    """Score model ``name``, log the numbers to its latest finished MLflow run, then write the JSON."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    params.model(name)  # a clear ConfigError for an unknown name, before any work
    device = resolve_device(params.device)
    run_id = tracking.latest_training_run(tracking.setup(params.mlflow.experiment), name)
    model = models.load(root / "models" / name, device)
    judge = classifier.load(root / "models" / "classifier", device)
    train = load_split(root / "data", "train", params.data.train_size)
    test = load_split(root / "data", "test")
    start = time.perf_counter()
    metrics = score(model, judge, train, test, params.evaluate, params.seed)
    log.info("%s: evaluated in %.1f s: %s", name, time.perf_counter() - start, json.dumps(metrics))

    now = int(time.time() * 1000)
    MlflowClient(tracking.tracking_uri()).log_batch(
        run_id, metrics=[Metric(f"eval.{k}", float(v), now, 0) for k, v in flatten(metrics).items()])
    write_atomic(root / "metrics" / "eval" / f"{name}.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
