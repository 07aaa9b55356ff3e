"""Likelihoods with no latent (:mod:`vaelab.measures.baselines`), fitted on the training images and scored on exactly
the image sets of the evaluation's likelihood tables: the document ``metrics/baselines.json`` holds, keyed by
image-set id (the bar a VAE's bits/dim must clear)."""

from __future__ import annotations

from pathlib import Path

import torch

from vaelab.core.config import Params
from vaelab.data import image_sets
from vaelab.data.image_sets import image_sets_for
from vaelab.data.mnist import load_binarized_test, load_split
from vaelab.data.spaces import binarize
from vaelab.measures import baselines as bl


def table(params: Params, root: Path = Path(".")) -> dict:
    """Every baseline on every image set of the evaluation (grey ones on grey sets, binary ones on binarised sets)."""
    train = load_split(root / "data", "train", params.data.train_size).images
    test = load_split(root / "data", "test", params.data.test_size).images
    bits_test = load_binarized_test(root / "data")
    sets = image_sets_for(params.evaluate, len(test), len(bits_test), len(test))
    grey = {"uniform": bl.uniform_nll, "histogram": lambda x: bl.histogram_nll(hist, x),
            "histogram_per_pixel": lambda x: bl.histogram_nll(per_pixel, x)}
    hist, per_pixel = bl.fit_histogram(train, per_pixel=False), bl.fit_histogram(train, per_pixel=True)
    train_bits = binarize(train, torch.Generator().manual_seed(params.evaluate.binarize_seed))
    mu = bl.fit_bernoulli(train_bits)
    log_pi, means, history = bl.fit_mixture(train_bits, seed=params.evaluate.binarize_seed)
    binary = {"bernoulli_per_pixel": lambda x: bl.bernoulli_nll(mu, x),
              "bernoulli_mixture": lambda x: bl.mixture_nll(log_pi, means, x)}
    out: dict = {image_sets.set_id("test", None, 0, len(test)): {n: bl.summary(f(test), True) for n, f in grey.items()}}
    for group, idx in (("grey8bit", sets.likelihood), ("grey8bit_exact", sets.exact)):
        if len(idx) > 1:
            out[sets.ids[group]] = {n: bl.summary(f(test[idx]), True) for n, f in grey.items()}
    for group, idx in (("binarized", sets.binarized), ("binarized_exact", sets.binarized_exact)):
        if len(idx) > 1:
            out[sets.ids[group]] = {n: bl.summary(f(bits_test[idx]), False) for n, f in binary.items()}
    out["mixture_training_loglik"] = history[-1]
    return out
