"""DVC stage `evaluate@<model>`: score one trained model (metrics/eval/<model>.json, its MLflow run)."""

import click

from vaelab.cli import run_stage
from vaelab.config import load_params
from vaelab.evaluation import evaluate_model


@click.command()
@click.option("--model", "name", required=True, help="A key of `models` in params.yaml, e.g. vae_bce.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(name: str, params_path: str) -> None:
    """Evaluate MODEL on the test set and record the metrics."""
    run_stage(f"evaluate@{name}", lambda: evaluate_model(load_params(params_path), name))


if __name__ == "__main__":
    main()
