"""DVC stage `figures@<model>`: draw one trained model's figures (its first seed; never retrains), attach them to
exactly the MLflow run that trained that checkpoint, and publish them under ``reports/figures/<model>/``."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vaelab import models, tracking
from vaelab.config import Params, load_params
from vaelab.data import load_split
from vaelab.files import md5_of_file
from vaelab.layout import Layout
from vaelab.stage import publish, run_stage, staging
from vaelab.viz.model_figures import model_figures, save_figures

log = logging.getLogger("vaelab.figures")


def draw(params: Params, name: str, root: Path = Path(".")) -> list[Path]:
    models.spec_of(params, name)  # a clear error for an unknown name
    seed = params.seeds_of(name)[0]
    at = Layout(root)
    path = at.checkpoint(name, seed)
    model = models.load(path)
    experiment_id = tracking.setup(params.mlflow.experiment)
    run_id = tracking.run_for_checkpoint(experiment_id, name, seed, md5_of_file(path), f"figures@{name}")
    figs = model_figures(name, model, load_split(root / "data", "test", params.data.test_size), params.figures, seed)
    with staging(root, "figures") as staged:
        folder = Layout(staged).figures(name)
        save_figures(figs, folder, params.figures.dpi)
        tracking.log_artifacts(run_id, folder, "figures")
        parent = tracking.run_tag(run_id, "mlflow.parentRunId")
        if parent:  # the model's run shows them too
            tracking.log_artifacts(parent, folder, "figures")
        written = publish(staged, root, replace=[at.rel(at.figures(name))])
    log.info("%s: %d figures in reports/figures/%s, logged to MLflow run %s", name, len(written), name, run_id)
    return written


@click.command()
@click.option("--model", "name", required=True, help="A key of `models` in params.yaml, e.g. vae_bce.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(name: str, params_path: str) -> None:
    """Draw MODEL's figures from its trained checkpoint (first seed) and log them to its MLflow run."""
    run_stage(f"figures@{name}", lambda: draw(load_params(params_path), name))


if __name__ == "__main__":
    main()
