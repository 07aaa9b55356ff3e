"""DVC stage `train@<model>`: train one model of params.yaml `models` once per seed (:mod:`vaelab.training.seeds`:
stacked groups of one size, single-thread workers on the CPU), record each seed as an MLflow run under the model's
run (:mod:`vaelab.tracking.model_runs`), then publish its checkpoints, train metrics and histories together."""

from pathlib import Path

import click

from vaelab import models, tracking
from vaelab.core.config import Params, load_params
from vaelab.pipeline.stage import measured_speed, outputs, parallel_map, run_stage
from vaelab.training import seeds as training


def train(params: Params, name: str, root: Path = Path(".")) -> list[training.SeedResult]:
    spec, groups = models.spec_of(params, name), training.groups_for(params, name)
    with tracking.model_runs(params, name, training.earlier_parent(name, groups, root)) as runs:
        training.clear_outputs(name, root)
        calls = [(params, name, g, root, runs, runs.parent_id) for g in groups]
        with measured_speed(f"train@{name}", *training.seed_images(params, name)):
            results = [r for rs in parallel_map(training.train_group, calls, training.gflop(params, name) / len(groups))
                       for r in rs]
        runs.across_seeds([r.history for r in results])
        with outputs(root, "train", replace=training.output_dirs(name)) as staged:
            training.write_outputs(params, name, results, staged)
            runs.outputs(results, staged, models.serving_example(spec, root / "data"))
    training.forget_states(results)
    return results


@click.command()
@click.option("--model", "name", required=True, help="A key of `models` in params.yaml, e.g. vae_bce.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(name: str, params_path: str) -> None:
    """Train MODEL once per seed, record each seed in MLflow and write models/, metrics/ and plots/ outputs."""
    run_stage(f"train@{name}", lambda: train(load_params(params_path), name))


if __name__ == "__main__":
    main()
