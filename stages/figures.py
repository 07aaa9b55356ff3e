"""DVC stage `figures@<model>`: draw one trained model's figures from its first seed (never retrains), attach them
to the MLflow run that trained that checkpoint, and publish them under ``reports/figures/<model>/``."""

from pathlib import Path

import click

from vaelab import models, tracking
from vaelab.core.config import Params, load_params
from vaelab.core.layout import Layout
from vaelab.data.mnist import load_split
from vaelab.pipeline.stage import outputs, run_stage
from vaelab.viz.images import save_figures
from vaelab.viz.model_figures import model_figures


def draw(params: Params, name: str, root: Path = Path(".")) -> None:
    models.spec_of(params, name)  # a clear error for an unknown name
    seed, at = params.seeds_of(name)[0], Layout(root)
    model = models.load(at.checkpoint(name, seed))   # a bad checkpoint stops the stage before any other work
    runs = tracking.CheckpointRuns(params, name, f"figures@{name}", root)
    figs = model_figures(name, model, load_split(root / "data", "test", params.data.test_size), params.figures, seed)
    with outputs(root, "figures", replace=[at.rel(at.figures(name))]) as staged:
        folder = Layout(staged).figures(name)
        save_figures(figs, folder, params.figures.dpi)
        runs.figures(seed, folder)


@click.command()
@click.option("--model", "name", required=True, help="A key of `models` in params.yaml, e.g. vae_bce.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(name: str, params_path: str) -> None:
    """Draw MODEL's figures from its trained checkpoint (first seed) and log them to its MLflow run."""
    run_stage(f"figures@{name}", lambda: draw(load_params(params_path), name))


if __name__ == "__main__":
    main()
