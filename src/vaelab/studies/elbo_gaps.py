"""Variational inference made visible (the `inference` stage's study), for the 2-D models named in params.yaml `inference`.

With a 2-D latent the true posterior p(z|x) ∝ p(x|z) p(z) and log p(x) can be computed on grids
(:func:`vaelab.measures.inference.quadrature`). For the first seed of each model and the first test images (in the model's
own data space; a conditional model given the true label), a seeded random subset of the test images (the
evaluation's exact set, :mod:`vaelab.data.image_sets`), this measures, in nats per image:

- log p(x) by quadrature, the ELBO, and the importance-weighted bounds L_K for several K, which must climb to
  log p(x): the gap log p(x) − ELBO is exactly KL(q(z|x) ‖ p(z|x)), the term the ELBO leaves out;
- that gap split as in Cremer, Li & Duvenaud (2018): the approximation gap (the best Gaussian q*, fitted per
  image) and the amortisation gap (what sharing one encoder across images costs), on the first
  ``local_images`` of the set, beside the whole gap on those same images (``local_gap``: the parts add up to it);
- the quadrature's converged share and largest error estimate.

The stage writes ``metrics/inference.json`` and draws each model's posterior grids (true posterior contours with
the encoder's q(z|x) over them, for a few test digits).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from vaelab import models
from vaelab.core.config import Params
from vaelab.core.layout import Layout
from vaelab.data import image_sets
from vaelab.data.mnist import load_binarized_test, load_split
from vaelab.measures import importance, inference
from vaelab.studies.scorecard import test_images

log = logging.getLogger("vaelab.inference")


@dataclass(frozen=True)
class ModelGaps:
    """One model's numbers (``metrics/inference.json``) and the posterior grids of its first test digits."""

    numbers: dict
    grids: list
    labels: list[int]


def model_names(params: Params) -> list[str]:
    """The models of params ``inference.models`` that params ``models`` has (each validated)."""
    names = [n for n in params.inference.models if n in params.models]
    for n in names:
        models.spec_of(params, n)
    return names


def summary(values: torch.Tensor) -> dict[str, float]:
    """{mean, se} over images, as metrics/inference.json holds each number (:func:`vaelab.measures.importance.mean_se`)."""
    mean, se = importance.mean_se(values)
    return {"mean": mean, "se": se}


def groups(model, y: torch.Tensor | None):
    """(indices, decoder) per group of images sharing a decoder: all images for an unconditional model, one
    group per label for a conditional one (its decoder, given y, is a different function of z per label)."""
    if y is None:
        return [(None, model.decode)]
    out = []
    for label in y.unique().tolist():
        fixed = torch.full((1,), label, dtype=torch.int64)
        out.append(((y == label).nonzero().flatten(), lambda z, fixed=fixed: model.decode(z, fixed.expand(len(z)))))
    return out


def study_model(params: Params, name: str, root: Path) -> ModelGaps:
    """The ELBO's gaps of model ``name``'s first seed on the evaluation's exact set, and its posterior grids."""
    cfg = params.inference
    seed = params.seeds_of(name)[0]
    model = models.load(Layout(root).checkpoint(name, seed))
    lik = model.likelihood
    test = load_split(root / "data", "test")
    # The exact set of the evaluation (same seed): in draw order, so the first `local_images` are its nested subset.
    pick = image_sets.drawn(len(test.images), cfg.images, params.evaluate.image_set_seed)
    x = test_images(model.space, test, load_binarized_test(root / "data"), seed)[pick]
    labels = test.labels[pick]
    y = model.condition(labels)
    with torch.no_grad():
        q = model.encode(x, y)
    mu, logvar = q.mean, q.logvar
    n, k = cfg.local_images, cfg.figure_digits
    log_px, post_mean, post_cov = torch.empty(len(x)), torch.empty(len(x), 2), torch.empty(len(x), 2, 2)
    elbo, iwae = torch.empty(len(x)), {kk: torch.empty(len(x)) for kk in cfg.iwae_ks}
    elbo_local, elbo_enc = torch.empty(n), torch.empty(n)
    converged, error = torch.empty(len(x), dtype=torch.bool), torch.empty(len(x))
    gen = torch.Generator().manual_seed(seed)
    for idx, decode in groups(model, y):
        idx = torch.arange(len(x)) if idx is None else idx
        xs, ms, ls = x[idx], mu[idx], logvar[idx]
        with torch.no_grad():
            exact = inference.quadrature(decode, lik.log_prob_pairs, lik.log_prob, xs)
            log_px[idx], post_mean[idx], post_cov[idx] = exact.log_px, exact.mean, exact.cov
            converged[idx], error[idx] = exact.converged, exact.error
            bounds = inference.iwae_bounds(decode, lik.log_prob, xs, ms, ls, tuple(cfg.iwae_ks), gen)
            elbo[idx] = bounds.elbo
            for kk, v in bounds.iwae.items():
                iwae[kk][idx] = v
        local = idx < n
        if local.any():
            li = idx[local]
            _, _, elbo_local[li] = inference.fit_local_gaussian(decode, lik.log_prob, x[li], mu[li], logvar[li],
                                                                steps=cfg.local_steps, generator=gen)
            with torch.no_grad():
                elbo_enc[li] = inference.elbo(decode, lik.log_prob, x[li], mu[li], logvar[li], generator=gen)
    split = inference.gaps(log_px[:n], elbo_local, elbo_enc)
    total, set_seed = len(test.images), params.evaluate.image_set_seed
    result = {
        "images": cfg.images,
        "image_set": image_sets.set_id("exact", cfg.images, set_seed, total),
        # What the numbers are a likelihood of: the pixels the model is scored on, whether its decoder is a density
        # on them (a Bernoulli on grey pixels is not), and whether it is given the label (then −log p(x|y)).
        "pixels": model.space.name, "density": bool(getattr(lik, "density", False)), "given_label": model.conditional,
        "log_px": summary(log_px),
        "exact_converged": converged.to(torch.float32).mean().item(),
        "exact_max_error": error.max().item(),
        "elbo": summary(elbo),
        "gap": summary(log_px - elbo),
        **{f"iwae_{kk}": summary(v) for kk, v in iwae.items()},
        # The split, and the whole gap it splits, on the same images: the parts add up to it.
        "local_images": n,
        "local_image_set": image_sets.set_id("exact", n, set_seed, total),
        "local_gap": summary(log_px[:n] - elbo_enc),
        "approximation_gap": summary(split["approximation"]),
        "amortisation_gap": summary(split["amortisation"]),
    }
    grids = []
    for i in range(k):
        decode = groups(model, None if y is None else y[i:i + 1])[0][1]
        with torch.no_grad():
            grids.append(inference.posterior_grid(decode, lik.log_prob, x[i:i + 1], mu[i:i + 1], logvar[i:i + 1],
                                                  post_mean[i:i + 1], post_cov[i:i + 1], log_px[i:i + 1]))
    log.info("%s: log p(x) %.2f, ELBO %.2f, gap %.2f nats", name, result["log_px"]["mean"], result["elbo"]["mean"],
             result["gap"]["mean"])
    return ModelGaps(result, grids, labels[:k].tolist())
