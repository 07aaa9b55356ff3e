"""DVC stage `figures@<model>`: draw one trained model's figures into reports/figures/<model>/ (never retrains)."""

import click

from vaelab.cli import run_stage
from vaelab.config import load_params
from vaelab.figures import figures_stage


@click.command()
@click.option("--model", "name", required=True, help="A key of `models` in params.yaml, e.g. vae_bce.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(name: str, params_path: str) -> None:
    """Draw MODEL's figures from models/MODEL and the test set, and log them to its MLflow run."""
    run_stage(f"figures@{name}", lambda: figures_stage(load_params(params_path), name))


if __name__ == "__main__":
    main()
