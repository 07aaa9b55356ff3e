"""The report of a finished sweep of params.yaml `sweeps` (:mod:`vaelab.studies.tuning`, :mod:`vaelab.report.tuning`):
reports/<sweep>.md and reports/<sweep>.json, read from the experiments of `dvc exp show --json`. Not a DVC stage: a
stage cannot depend on the queue's experiments. stages/sweep.py queues the sweep."""

from pathlib import Path

import click

from vaelab.core.config import load_params
from vaelab.core.files import write_atomic, write_json
from vaelab.pipeline.experiments import COMMAND, exp_show
from vaelab.pipeline.stage import run_stage
from vaelab.pipeline.sweeps import sweep_of
from vaelab.report.tuning import report
from vaelab.studies.tuning import collect


def write(name: str, params_path: str, exp_show_json: str | None, out: Path) -> None:
    params = load_params(params_path)
    doc = collect(params, name, sweep_of(params.sweeps, name, params.models).models, exp_show(exp_show_json))
    text = report(doc, name)  # before either file is written: both or neither
    write_json(out / f"{name}.json", doc)
    write_atomic(out / f"{name}.md", text)


@click.command()
@click.argument("name")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
@click.option("--exp-show-json", default=None, help=f"Read this file instead of running `{COMMAND}`.")
@click.option("--out", default="reports", show_default=True, help="Folder of <name>.md and <name>.json.")
def main(name: str, params_path: str, exp_show_json: str | None, out: str) -> None:
    """Write the report of sweep NAME from its finished experiments."""
    run_stage(f"tuning {name}", lambda: write(name, params_path, exp_show_json, Path(out)))


if __name__ == "__main__":
    main()
