"""DVC stage `baselines`: likelihoods with no latent (:mod:`vaelab.measures.baselines`), fitted on the training images and
scored on exactly the image sets of the evaluation's likelihood tables; writes ``metrics/baselines.json`` keyed by
image-set id."""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from vaelab.core.config import Params, load_params
from vaelab.core.files import write_atomic
from vaelab.data import image_sets
from vaelab.data.image_sets import image_sets_for
from vaelab.data.mnist import load_binarized_test, load_split
from vaelab.data.spaces import binarize
from vaelab.measures import baselines as bl
from vaelab.core.layout import Layout
from vaelab.pipeline.stage import publish, run_stage, staging


def score(params: Params, root: Path = Path(".")) -> dict:
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
    with staging(root, "baselines") as staged:
        write_atomic(Layout(staged).baselines_metrics, json.dumps(out, indent=2) + "\n")
        publish(staged, root)
    return out


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Fit the no-latent baselines and score them on the evaluation's image sets."""
    run_stage("baselines", lambda: score(load_params(params_path)))


if __name__ == "__main__":
    main()
