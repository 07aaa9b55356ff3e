"""DVC stage `inference`: variational inference made visible for the 2-D models of params.yaml `inference`
(:mod:`vaelab.studies.elbo_gaps`: exact posteriors and log p(x) by quadrature, the ELBO's gaps, first seed; one
model a worker). Writes ``metrics/inference.json`` and ``reports/figures/inference/<model>.png``."""

from pathlib import Path

import click

from vaelab.core.config import Params, load_params
from vaelab.core.files import write_json
from vaelab.core.layout import Layout
from vaelab.pipeline.stage import outputs, parallel_map, run_stage
from vaelab.studies import elbo_gaps
from vaelab.viz.charts import posterior_contours
from vaelab.viz.images import save_figures
from vaelab.viz.model_figures import model_label

TITLE = ": the true posterior p(z|x) (filled) and the encoder's q(z|x) (lines)"


def study(params: Params, root: Path = Path(".")) -> dict:
    names = elbo_gaps.model_names(params)
    results = dict(zip(names, parallel_map(elbo_gaps.study_model, [(params, n, root) for n in names], 1e4)))
    numbers = {n: r.numbers for n, r in results.items()}
    with outputs(root, "inference", replace=[Layout().rel(Layout().figures("inference"))]) as staged:
        write_json(Layout(staged).inference_metrics, numbers)
        save_figures({n: posterior_contours(r.grids, r.labels, model_label(n) + TITLE) for n, r in results.items()},
                     Layout(staged).figures("inference"), params.figures.dpi)
    return numbers


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Measure the inference gaps of the 2-D models and draw their posteriors."""
    run_stage("inference", lambda: study(load_params(params_path)))


if __name__ == "__main__":
    main()
