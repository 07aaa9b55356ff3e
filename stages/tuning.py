"""The tuning report of a finished sweep (:mod:`vaelab.report.tuning`): reports/tuning.md. Not a DVC stage: it reads
the experiments of `dvc exp show --json` (the queue's sweep), which a stage cannot depend on. README "Sweeps"
gives the sweep that feeds it."""

import click

from vaelab.core.files import write_atomic
from vaelab.pipeline.experiments import COMMAND, exp_show
from vaelab.pipeline.stage import run_stage
from vaelab.report.tuning import MARGIN, report


@click.command()
@click.option("--exp-show-json", default=None, help=f"Read this file instead of running `{COMMAND}`.")
@click.option("--models", default="ae,ae_post,vae_mse,vae_bce", show_default=True)
@click.option("--margin", default=MARGIN, show_default=True, help="Relative margin around each model's best error.")
@click.option("--out", default="reports/tuning.md", show_default=True)
def main(exp_show_json: str | None, models: str, margin: float, out: str) -> None:
    """Write the tuning report of the lr × batch-size sweep."""
    run_stage("tuning", lambda: write_atomic(out, report(exp_show(exp_show_json), models.split(","), margin)))


if __name__ == "__main__":
    main()
