"""DVC stage `report`: every model side by side in reports/report.md and a self-contained reports/report.html,
with the claims table (metrics/claims.json), all read from the other stages' outputs (:mod:`vaelab.report.document`);
report.html and claims.json are logged to a run of the report's own MLflow experiment."""

import logging
from pathlib import Path

import click

from vaelab import tracking
from vaelab.core.config import Params, load_params
from vaelab.pipeline.stage import outputs, run_stage
from vaelab.report import document

log = logging.getLogger("vaelab.report")


def write_report(params: Params, root: Path = Path(".")) -> Path:
    inputs = document.read_inputs(params, root)  # a clear error before any work or recording
    run = tracking.ReportRun(params)
    with outputs(root, "report", replace=["reports/study"]) as staged:
        document.write(params, inputs, root, staged)
        # The self-contained HTML (MLflow previews it) and the claims; report.md's images are files beside it in
        # the repository, which the run does not hold. `seeds`: the default set.
        run.record({"models": ",".join(inputs.models), "seeds": ",".join(map(str, params.seeds))}, staged)
    log.info("report: reports/report.md and reports/report.html written")
    return root / "reports" / "report.md"


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Write the comparison report from the pipeline's figures, metrics and histories; log it to MLflow."""
    run_stage("report", lambda: write_report(load_params(params_path)))


if __name__ == "__main__":
    main()
