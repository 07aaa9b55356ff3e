"""reports/<sweep>.md and .json: the claims judged on a second, disjoint seed set (:mod:`vaelab.report.stability`),
from the experiment of params.yaml `sweeps.<sweep>` in `dvc exp show --json`. Not a DVC stage (see stages/tuning.py)."""

from pathlib import Path

import click

from vaelab.core.config import load_params
from vaelab.core.files import write_atomic, write_json
from vaelab.pipeline.experiments import COMMAND, exp_show
from vaelab.pipeline.stage import run_stage
from vaelab.report.stability import document, report


def write(name: str, params_path: str, exp_show_json: str | None, out: Path) -> None:
    doc = document(load_params(params_path), name, exp_show(exp_show_json))
    text = report(doc, name)  # before either file is written: both or neither
    write_json(out / f"{name}.json", doc)
    write_atomic(out / f"{name}.md", text)


@click.command()
@click.argument("name", default="seeds2")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
@click.option("--exp-show-json", default=None, help=f"Read this file instead of running `{COMMAND}`.")
@click.option("--out", default="reports", show_default=True, help="Folder of <name>.md and <name>.json.")
def main(name: str, params_path: str, exp_show_json: str | None, out: str) -> None:
    """Judge the claims on the seeds of sweep NAME's experiment, beside the baseline commit's."""
    run_stage(f"stability {name}", lambda: write(name, params_path, exp_show_json, Path(out)))


if __name__ == "__main__":
    main()
