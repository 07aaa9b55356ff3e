"""DVC stage `sbi@<task>` (not sbi.py, which would hide the sbi package): a CVAE, black-box VI and sbi's NPE on one
sbibm task (:mod:`vaelab.sbi.study`), scored by C2ST; metrics/sbi/<task>.json, a pair plot and MLflow runs."""

from pathlib import Path

import click

from vaelab import tracking
from vaelab.core.config import Params, load_params
from vaelab.core.files import write_json
from vaelab.core.layout import Layout
from vaelab.pipeline.stage import map_calls, outputs, run_stage
from vaelab.sbi import study
from vaelab.viz.images import save_figures
from vaelab.viz.sbi_figures import pair_plot


def run(params: Params, task: str, root: Path = Path(".")) -> dict:
    study.check(params.sbi, task)
    runs, at = tracking.SBIRuns(params, task), Layout(root)   # clear errors before any work
    scored = map_calls(study.score, study.calls(task, params.sbi, at.sbibm), study.GFLOP_PER_CALL, params.device)
    doc = study.document(task, params.sbi, scored)
    figure = pair_plot(task, scored, study.references(task, params.sbi, at.sbibm))
    with outputs(root, "sbi", replace=[at.rel(at.sbi_figures(task))]) as staged:
        write_json(Layout(staged).sbi_metrics(task), doc)
        save_figures({"pairs": figure}, Layout(staged).sbi_figures(task), params.figures.dpi)
        runs.record(params.sbi, scored, doc, Layout(staged).sbi_figures(task))
    return doc


@click.command()
@click.option("--task", required=True, help="A task of params.yaml `sbi.tasks`, e.g. two_moons.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(task: str, params_path: str) -> None:
    """Train and score the SBI study's estimators on TASK."""
    run_stage(f"sbi@{task}", lambda: run(load_params(params_path), task))


if __name__ == "__main__":
    main()
