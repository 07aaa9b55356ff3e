"""DVC stage `quadrants`: Sohn, Lee & Yan's structured-output task (NeurIPS 2015), quadrant completion.

For each setting of params.yaml ``quadrants.given`` (1, 2 or 3 given quadrants of a digit) a baseline network and a
CVAE on top of it are trained (:mod:`vaelab.studies.quadrants`) and scored on the first ``quadrants.test_images`` test
images by −log p(missing pixels | given pixels) in nats per image, the CVAE's by importance sampling with
S = ``quadrants.samples``. One seed: the first of ``seeds``. The settings train in parallel single-thread worker
processes on the CPU (:func:`vaelab.pipeline.stage.parallel_map`: bit-identical to one after another), one after another
on CUDA. The run is recorded in MLflow (run ``quadrants``) and the outputs published together:

- ``metrics/quadrants.json``: per setting the baseline's and the CVAE's NLL (± standard error over images), the
  CVAE's negative ELBO, and Pyro's anchor numbers beside them;
- ``reports/figures/quadrants/given<k>.png``: input / truth / baseline / CVAE samples for a few test digits.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import click

from vaelab import tracking
from vaelab.core.config import MNIST_TRAIN_SIZE, Params, flatten, load_params
from vaelab.core.device import resolve_device
from vaelab.core.files import atomic_path, write_atomic
from vaelab.data.mnist import SPLIT_SIZES, load_split
from vaelab.core.layout import Layout
from vaelab.pipeline.stage import parallel_map, publish, run_stage, staging
from vaelab.studies import quadrants as quad
from vaelab.viz.quadrant_figures import completions

log = logging.getLogger("vaelab.studies.quadrants")
OUTPUTS = ("metrics/quadrants.json", "reports/figures/quadrants")
# Forward and backward of the baseline and the CVAE's three 500-500 MLPs, per training image and epoch (sizes
# the work for parallel_map); the evaluation adds S generation passes (~1 MFLOP each) per scored image.
TRAIN_MFLOP_PER_IMAGE = {"baseline": 4.0, "cvae": 13.0}


def complete_setting(params: Params, cfg: quad.QuadrantsConfig, given: int, root: Path) -> quad.SettingResult:
    """One setting, end to end, in a worker: reads the data itself (cheaper than sending it)."""
    device = resolve_device(params.device)
    start = time.process_time()
    train = load_split(root / "data", "train", params.data.train_size)
    test = load_split(root / "data", "test", cfg.test_images)
    result = quad.run_setting(cfg, given, train.images, test.images, test.labels, params.seeds[0], device)
    m = result.metrics
    # CPU seconds, not wall: what the setting costs whatever else shares the machine.
    log.info("given %d: baseline %.2f, CVAE %.2f ± %.2f nats (S = %d, %d test images) in %.1f CPU s", given,
             m["baseline_nll"], m["cvae_nll"], m["cvae_nll_se"], cfg.samples, len(test.images),
             time.process_time() - start)
    return result


def save_png(figure, path: Path, dpi: int) -> None:
    """PNG with fixed metadata (no software version or date): identical pictures give identical files."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png", metadata={"Software": None})


def numbers(tree: dict) -> dict[str, float]:
    """The numeric leaves of ``tree`` as dotted keys (bools and strings left out): what MLflow records."""
    return {k: float(v) for k, v in flatten(tree).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def quadrants(params: Params, root: Path = Path(".")) -> dict:
    cfg = quad.parse_config(params.quadrants)  # a clear ConfigError before any work
    device = resolve_device(params.device)
    seed = params.seeds[0]
    experiment_id = tracking.setup(params.mlflow.experiment)
    for old in OUTPUTS:  # an earlier result must not outlive a failed re-run (as DVC does)
        path = root / old
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    train_size = params.data.train_size or MNIST_TRAIN_SIZE
    images = cfg.test_images or SPLIT_SIZES["test"]
    calls = [(params, cfg, g, root) for g in cfg.given]
    gflop = (train_size * (cfg.baseline_epochs * TRAIN_MFLOP_PER_IMAGE["baseline"]
                           + cfg.epochs * TRAIN_MFLOP_PER_IMAGE["cvae"]) + images * cfg.samples) / 1e3
    results = ([complete_setting(*c) for c in calls] if device.type == "cuda"
               else parallel_map(complete_setting, calls, gflop))
    metrics = quad.summary(cfg, results, seed, train_size, images)
    tags = {**tracking.run_tags("quadrants", "quadrants"), "seed": str(seed)}
    with tracking.tracked_run("quadrants", experiment_id, tags=tags) as run:
        rid = run.info.run_id
        tracking.log_params(rid, {**{f"quadrants.{k}": v for k, v in flatten(cfg).items()}, "seed": seed,
                                  "train_size": params.data.train_size, "device": str(device)})
        for r in results:
            for net, history in (("baseline", r.baseline_history), ("cvae", r.cvae_history)):
                for epoch in history:
                    tracking.log_metrics(rid, {f"given_{r.given}.{net}.train_{k}": v for k, v in epoch.items()
                                               if k != "epoch"}, epoch["epoch"])
        tracking.log_metrics(rid, numbers({k: v for k, v in metrics.items() if k.startswith("given_")}))
        with staging(root, "quadrants") as staged:
            at = Layout(staged)
            write_atomic(at.quadrants_metrics, json.dumps(metrics, indent=2) + "\n")
            folder = at.figures("quadrants")
            folder.mkdir(parents=True)
            for r in results:
                m = r.metrics
                title = (f"Given the {' + '.join(quad.GIVEN_QUADRANTS[r.given])} quadrant{'s' * (r.given > 1)}\n"
                         f"−log p(missing | given): baseline {m['baseline_nll']:.1f}, CVAE {m['cvae_nll']:.1f} nats "
                         f"(S = {cfg.samples})")
                save_png(completions(r.tiles, title), folder / f"given{r.given}.png", params.figures.dpi)
            tracking.log_artifacts(rid, folder, "figures")
            tracking.log_artifacts(rid, at.quadrants_metrics.parent, "metrics")
            publish(staged, root, replace=[at.rel(folder)])
    for r in results:
        key = f"given_{r.given}"
        log.info("%s: baseline %.2f, CVAE %.2f ± %.2f nats (Pyro: %.1f, %.1f)", key, metrics[key]["baseline_nll"],
                 metrics[key]["cvae_nll"], metrics[key]["cvae_nll_se"], quad.PYRO_ANCHOR[key]["baseline_nll"],
                 quad.PYRO_ANCHOR[key]["cvae_nll"])
    return metrics


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Train the baseline and the CVAE for 1, 2 and 3 given quadrants, score them and draw the completions."""
    run_stage("quadrants", lambda: quadrants(load_params(params_path)))


if __name__ == "__main__":
    main()
