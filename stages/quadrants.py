"""DVC stage `quadrants`: Sohn, Lee & Yan's quadrant completion (:mod:`vaelab.studies.quadrants`), a baseline and a
CVAE per setting of ``quadrants.given``, first seed, one setting a worker on the CPU; writes metrics/quadrants.json and
reports/figures/quadrants/given<k>.png, recorded in the MLflow run ``quadrants``."""

from pathlib import Path

import click

from vaelab import tracking
from vaelab.core.config import Params, load_params
from vaelab.core.files import write_json
from vaelab.core.layout import Layout
from vaelab.pipeline.stage import map_calls, outputs, run_stage
from vaelab.studies import quadrants as quad
from vaelab.viz.images import save_figures
from vaelab.viz.quadrant_figures import setting_figures


def quadrants(params: Params, root: Path = Path(".")) -> dict:
    cfg, run = quad.parse_config(params.quadrants), tracking.QuadrantsRun(params)  # clear errors before any work
    quad.clear_outputs(root)
    with outputs(root, "quadrants") as staged:
        results = map_calls(quad.complete_setting, quad.calls(params, cfg, root), quad.gflop(params, cfg),
                            params.device)
        metrics = quad.document(params, cfg, results)
        write_json(Layout(staged).quadrants_metrics, metrics)
        save_figures(setting_figures(results, cfg.samples), Layout(staged).figures("quadrants"), params.figures.dpi)
        run.record(cfg, results, metrics, staged)
    return metrics


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Train the baseline and the CVAE for 1, 2 and 3 given quadrants, score them and draw the completions."""
    run_stage("quadrants", lambda: quadrants(load_params(params_path)))


if __name__ == "__main__":
    main()
