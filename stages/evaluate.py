"""DVC stage `evaluate@<model>`: score every seed of one trained model on the test set, log each seed's
numbers (``eval/...``) to exactly the MLflow run that trained its checkpoint and their mean and interval to the
model's parent run, and write ``metrics/eval/<model>.json`` (per seed, and the mean over seeds)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import click

from vaelab import judge as judges, models, stats, tracking
from vaelab.config import MNIST_TEST_SIZE, Params, flatten, load_params
from vaelab.data import load_binarized_test, load_split
from vaelab.device import resolve_device
from vaelab.files import md5_of_file, write_atomic
from vaelab.errors import ConfigError
from vaelab.layout import Layout
from vaelab.image_sets import image_sets_for
from vaelab.scorecard import mean_over_seeds, score, test_sets
from vaelab.stage import parallel_map, publish, run_stage, staging

log = logging.getLogger("vaelab.evaluate")


def evaluate_seed(params: Params, name: str, seed: int, root: Path, experiment_id: str) -> tuple[dict, str]:
    """Score one seed's checkpoint and log the numbers to exactly the run that trained it; return the numbers and
    that run's id."""
    device = resolve_device(params.device)
    at = Layout(root)
    judge = judges.load(at.judge_dir, device)
    train = load_split(root / "data", "train", params.data.train_size)
    tests = test_sets(load_split(root / "data", "test", params.data.test_size), load_binarized_test(root / "data"), judge, seed,
                      params.evaluate.sample_images)
    path = at.checkpoint(name, seed)
    model = models.load(path, device)
    run_id = tracking.run_for_checkpoint(experiment_id, name, seed, md5_of_file(path), f"evaluate@{name}")
    start = time.perf_counter()
    metrics = score(model, judge, train, tests, params.evaluate, seed)
    log.info("%s seed %d: evaluated in %.1f s", name, seed, time.perf_counter() - start)
    tracking.log_params(run_id, {f"evaluate.{k}": v for k, v in flatten(params.evaluate).items()})
    # Also the metrics of the run's MLflow Model on its test set: the logged model's page lists them.
    tracking.log_metrics(run_id, tracking.eval_metrics(flatten(metrics)), model_id=tracking.run_tag(run_id, tracking.MODEL_ID_TAG),
                         dataset=tracking.logged_dataset(run_id, "testing"))
    return metrics, run_id


def check_test_images(params: Params) -> None:
    """Every count of test images the evaluation takes fits in the test set it is given (data.test_size)."""
    n_test = params.data.test_size or MNIST_TEST_SIZE
    for key in ("likelihood_images", "sample_images", "silhouette_size", "style_images"):
        value = getattr(params.evaluate, key)
        if value is not None and value > n_test:
            raise ConfigError(f"params.yaml: evaluate.{key} = {value}, but the test set has {n_test} images "
                              f"(data.test_size): expected at most {n_test}")


def evaluate(params: Params, name: str, root: Path = Path(".")) -> dict:
    """Every seed, in parallel single-thread workers on the CPU (as training), one after another on CUDA."""
    models.spec_of(params, name)  # a clear ConfigError for an unknown name, before any work
    check_test_images(params)
    device = resolve_device(params.device)
    experiment_id = tracking.setup(params.mlflow.experiment)
    seeds = params.seeds_of(name)
    calls = [(params, name, s, root, experiment_id) for s in seeds]
    # The importance-weighted bounds dominate: K decoder passes (1.1 MFLOP each) per scored test image.
    gflop = params.evaluate.iwae_samples * 10_000 * 1.1e-3
    scored = [evaluate_seed(*c) for c in calls] if device.type == "cuda" else parallel_map(evaluate_seed, calls, gflop)
    results = [metrics for metrics, _ in scored]
    per_seed = dict(zip(seeds, results))
    parent = tracking.run_tag(scored[0][1], "mlflow.parentRunId")
    if parent:  # the model's run (a checkpoint pulled from a DVC remote into a fresh store has none)
        tracking.log_metrics(parent, tracking.across_seeds(stats.across_seeds([tracking.eval_metrics(flatten(m)) for m in results])))
    n_test = params.data.test_size or MNIST_TEST_SIZE
    sets = image_sets_for(params.evaluate, n_test, MNIST_TEST_SIZE, min(params.evaluate.sample_images, n_test))
    # The image set behind each group, once for all seeds: a table may only set side by side numbers of one set.
    groups = {g for m in results for g in m}
    result = {**{f"seed{s}": m for s, m in per_seed.items()}, "mean": mean_over_seeds(list(per_seed.values())),
              "image_sets": {g: i for g, i in sets.ids.items() if g in groups}}
    with staging(root, "evaluate") as staged:
        write_atomic(Layout(staged).eval_metrics(name), json.dumps(result, indent=2) + "\n")
        publish(staged, root)
    return result


@click.command()
@click.option("--model", "name", required=True, help="A key of `models` in params.yaml, e.g. vae_bce.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(name: str, params_path: str) -> None:
    """Evaluate every seed of MODEL on the test set and record the metrics."""
    run_stage(f"evaluate@{name}", lambda: evaluate(load_params(params_path), name))


if __name__ == "__main__":
    main()
