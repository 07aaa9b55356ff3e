"""reports/<sweep>.md and .json of a finished sweep of params.yaml `sweeps` (:mod:`vaelab.studies.tuning`), read from
`dvc exp show --json`. Not a DVC stage: a stage cannot depend on the queue's experiments (stages/sweep.py queues)."""

import json
from pathlib import Path

import click

from vaelab.core.config import load_params
from vaelab.core.files import write_atomic, write_json
from vaelab.pipeline.experiments import COMMAND, exp_show
from vaelab.pipeline.stage import run_stage
from vaelab.pipeline.sweeps import sweep_of
from vaelab.report.tuning import report
from vaelab.studies.tuning import document


def write(name: str, params_path: str, exp_show_json: str | None, out: Path, best: bool) -> None:
    params, path = load_params(params_path), out / f"{name}.json"
    sweep = sweep_of(params.sweeps, name, params.models)
    doc = document(params, name, sweep.models, sweep.fixed.get("train.epochs", params.train.epochs),
                   exp_show(exp_show_json), json.loads(path.read_text()) if path.exists() else None, best)
    text = report(doc, name)  # before either file is written: both or neither
    write_json(path, doc)
    write_atomic(out / f"{name}.md", text)


@click.command()
@click.argument("name")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
@click.option("--exp-show-json", default=None, help=f"Read this file instead of running `{COMMAND}`.")
@click.option("--out", default="reports", show_default=True, help="Folder of <name>.md and <name>.json.")
@click.option("--best-at-full-epochs", "best", is_flag=True, help="Add the check of each model's best setting.")
def main(name: str, params_path: str, exp_show_json: str | None, out: str, best: bool) -> None:
    """Write the report of sweep NAME from its finished experiments."""
    run_stage(f"tuning {name}", lambda: write(name, params_path, exp_show_json, Path(out), best))


if __name__ == "__main__":
    main()
