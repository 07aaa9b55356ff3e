"""DVC stage `collapse`: the first optimiser steps of the post's AE, as written and as made to work
(:mod:`vaelab.studies.collapse`), step by step; writes ``metrics/collapse.json`` (the report states the mechanism
from it)."""

from pathlib import Path

import click

from vaelab.core.config import Params, load_params
from vaelab.core.files import write_json
from vaelab.core.layout import Layout
from vaelab.pipeline.stage import outputs, run_stage
from vaelab.studies.collapse import check, compute


def collapse(params: Params, root: Path = Path(".")) -> dict:
    check(params)
    result = compute(params, root)
    with outputs(root, "collapse") as staged:
        write_json(Layout(staged).collapse_metrics, result)
    return result


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Measure the first steps of the AEs of params.yaml `collapse.models`."""
    run_stage("collapse", lambda: collapse(load_params(params_path)))


if __name__ == "__main__":
    main()
