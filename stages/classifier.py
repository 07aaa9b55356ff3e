"""DVC stage `classifier`: train the digit classifier that judges decoded images (models/classifier)."""

import click

from vaelab.cli import run_stage
from vaelab.classifier import train_classifier
from vaelab.config import load_params


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Train the classifier on the training set; write models/classifier and metrics/classifier.json."""
    run_stage("classifier", lambda: train_classifier(load_params(params_path)))


if __name__ == "__main__":
    main()
