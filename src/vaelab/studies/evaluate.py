"""The evaluation of one model: every seed's checkpoint scored on the test set (:func:`vaelab.studies.scorecard.score`),
and the document ``metrics/eval/<model>.json`` holds (per seed, the mean over seeds, the image set behind each group).

A seed is scored in its own process on the CPU (``score_seed`` reads what it needs itself: cheaper than sending
it); recording the numbers is the stage's business, not this module's.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from vaelab import models
from vaelab.core.config import MNIST_TEST_SIZE, Params
from vaelab.core.device import resolve_device
from vaelab.core.errors import ConfigError
from vaelab.core.layout import Layout
from vaelab.data.image_sets import image_sets_for
from vaelab.data.mnist import load_binarized_test, load_split
from vaelab.measures import judge as judges
from vaelab.measures.references import References
from vaelab.studies.scorecard import check_groups, mean_over_seeds, score, test_sets

log = logging.getLogger("vaelab.evaluate")
# The importance-weighted bounds dominate: K decoder passes (1.1 MFLOP each) per scored test image.
DECODER_GFLOP = 1.1e-3


def check(params: Params, name: str, root: Path) -> None:
    """A clear error before any work: an unknown model or metric group, a count of test images the test set lacks
    (ConfigError), or a seed's checkpoint that is missing or unreadable (CheckpointError, naming the file)."""
    models.spec_of(params, name)
    check_groups(params.evaluate)
    n_test = params.data.test_size or MNIST_TEST_SIZE
    for key in ("likelihood_images", "sample_images", "silhouette_size", "style_images", "trust_images"):
        value = getattr(params.evaluate, key)
        if value is not None and value > n_test:
            raise ConfigError(f"params.yaml: evaluate.{key} = {value}, but the test set has {n_test} images "
                              f"(data.test_size): expected at most {n_test}")
    for seed in params.seeds_of(name):   # read here, not in the workers: a bad file stops the stage in a second
        models.load(Layout(root).checkpoint(name, seed))


def gflop_per_seed(params: Params) -> float:
    return params.evaluate.iwae_samples * MNIST_TEST_SIZE * DECODER_GFLOP


def score_seed(params: Params, name: str, seed: int, root: Path) -> tuple[dict, dict[str, float]]:
    """Score one seed's checkpoint: the numbers of ``metrics/eval/<model>.json`` for that seed, and the seconds each
    group took (``make bench`` prints their shares)."""
    device = resolve_device(params.device)
    at = Layout(root)
    judge = judges.load(at.judge_dir, device)
    train = load_split(root / "data", "train", params.data.train_size)
    tests = test_sets(load_split(root / "data", "test", params.data.test_size), load_binarized_test(root / "data"),
                      seed)
    model = models.load(at.checkpoint(name, seed), device)
    start, parts = time.perf_counter(), {}
    metrics = score(model, judge, train, tests, References.load(at.references), params.evaluate, seed, parts)
    log.info("%s seed %d: evaluated in %.1f s (%s)", name, seed, time.perf_counter() - start,
             ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()))
    return metrics, parts


def document(params: Params, per_seed: dict[int, dict]) -> dict:
    """Per seed, the mean over seeds, and the image set behind each group, once for all seeds: a table may only
    set side by side numbers of one set."""
    n_test = params.data.test_size or MNIST_TEST_SIZE
    sets = image_sets_for(params.evaluate, n_test, MNIST_TEST_SIZE, min(params.evaluate.sample_images, n_test))
    groups = {g for m in per_seed.values() for g in m}
    return {**{f"seed{s}": m for s, m in per_seed.items()}, "mean": mean_over_seeds(list(per_seed.values())),
            "image_sets": {g: i for g, i in sets.ids.items() if g in groups}}
