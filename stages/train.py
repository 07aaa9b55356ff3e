"""DVC stage `train@<model>`: train one model of the experiment matrix (params.yaml `models`)."""

import click

from vaelab.cli import run_stage
from vaelab.config import load_params
from vaelab.experiment import train_model


@click.command()
@click.option("--model", "name", required=True, help="A key of `models` in params.yaml, e.g. vae_bce.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(name: str, params_path: str) -> None:
    """Train MODEL, record it in MLflow and write models/, metrics/ and plots/ outputs."""
    run_stage(f"train@{name}", lambda: train_model(load_params(params_path), name))


if __name__ == "__main__":
    main()
