"""The rate–distortion report of a finished sweep (:mod:`vaelab.report.rd`): reports/rd.md, its table and
reports/figures/rd.png. Not a DVC stage: it reads the experiments of `dvc exp show --json` (the queue's sweep),
which a stage of the pipeline cannot depend on. See README "Sweeps" for the sweep that feeds it."""

from pathlib import Path

import click

from vaelab.pipeline.experiments import COMMAND, exp_show
from vaelab.pipeline.stage import run_stage
from vaelab.report.rd import write_report


@click.command()
@click.option("--exp-show-json", default=None, help=f"Read this file instead of running `{COMMAND}`.")
@click.option("--out-dir", default="reports", show_default=True, type=click.Path(file_okay=False))
def main(exp_show_json: str | None, out_dir: str) -> None:
    """Plot test KL (rate) against test reconstruction error (distortion) of the sweep's experiments."""
    run_stage("rd", lambda: click.echo(write_report(exp_show(exp_show_json), Path(out_dir))))


if __name__ == "__main__":
    main()
