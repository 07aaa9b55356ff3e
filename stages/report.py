"""DVC stage `report`: all models side by side in reports/report.md and a self-contained reports/report.html."""

import click

from vaelab.cli import run_stage
from vaelab.config import load_params
from vaelab.report import write_report


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Write the comparison report from the pipeline's figures, metrics and histories; log it to MLflow."""
    run_stage("report", lambda: write_report(load_params(params_path)))


if __name__ == "__main__":
    main()
