"""DVC stage `evaluate@<model>`: score every seed of one trained model on the test set (:mod:`vaelab.studies.evaluate`;
in parallel single-thread workers on the CPU, one after another on CUDA), log each seed's numbers to the MLflow run
that trained its checkpoint and their mean to the model's run, and write ``metrics/eval/<model>.json``."""

from pathlib import Path

import click

from vaelab import tracking
from vaelab.core.config import Params, load_params
from vaelab.core.files import write_json
from vaelab.core.layout import Layout
from vaelab.pipeline.stage import map_calls, outputs, record_parts, run_stage
from vaelab.studies import evaluate as study


def evaluate(params: Params, name: str, root: Path = Path(".")) -> dict:
    study.check(params, name, root)
    runs, seeds = tracking.CheckpointRuns(params, name, f"evaluate@{name}", root), params.seeds_of(name)
    scored = map_calls(study.score_seed, [(params, name, s, root) for s in seeds], study.gflop_per_seed(params),
                       params.device)
    per_seed = {s: metrics for s, (metrics, _) in zip(seeds, scored)}
    record_parts(f"evaluate@{name}", [parts for _, parts in scored], root)
    runs.evaluation(params.evaluate, per_seed)
    result = study.document(params, per_seed)
    with outputs(root, "evaluate") as staged:
        write_json(Layout(staged).eval_metrics(name), result)
    return result


@click.command()
@click.option("--model", "name", required=True, help="A key of `models` in params.yaml, e.g. vae_bce.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(name: str, params_path: str) -> None:
    """Evaluate every seed of MODEL on the test set and record the metrics."""
    run_stage(f"evaluate@{name}", lambda: evaluate(load_params(params_path), name))


if __name__ == "__main__":
    main()
