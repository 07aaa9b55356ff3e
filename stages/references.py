"""DVC stage `references`: what every model's evaluation compares against, computed once from the judge and the test
set (:mod:`vaelab.studies.references`); writes ``data/references/real.pt`` and ``metrics/references.json``."""

from pathlib import Path

import click

from vaelab.core.config import Params, load_params
from vaelab.core.files import write_json
from vaelab.core.layout import Layout
from vaelab.pipeline.stage import outputs, run_stage
from vaelab.studies.references import compute


def references(params: Params, root: Path = Path(".")) -> dict:
    refs, numbers = compute(params, root)
    with outputs(root, "references", replace=[Layout().rel(Layout().references_dir)]) as staged:
        refs.save(Layout(staged).references)
        write_json(Layout(staged).references_metrics, numbers)
    return numbers


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Compute the evaluation's references from the judge and the test set."""
    run_stage("references", lambda: references(load_params(params_path)))


if __name__ == "__main__":
    main()
