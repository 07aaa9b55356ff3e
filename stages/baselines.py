"""DVC stage `baselines`: likelihoods with no latent, fitted on the training images and scored on exactly the image
sets of the evaluation's likelihood tables (:mod:`vaelab.studies.baselines`); writes ``metrics/baselines.json``."""

from pathlib import Path

import click

from vaelab.core.config import Params, load_params
from vaelab.core.files import write_json
from vaelab.core.layout import Layout
from vaelab.pipeline.stage import outputs, run_stage
from vaelab.studies.baselines import table


def score(params: Params, root: Path = Path(".")) -> dict:
    out = table(params, root)
    with outputs(root, "baselines") as staged:
        write_json(Layout(staged).baselines_metrics, out)
    return out


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Fit the no-latent baselines and score them on the evaluation's image sets."""
    run_stage("baselines", lambda: score(load_params(params_path)))


if __name__ == "__main__":
    main()
