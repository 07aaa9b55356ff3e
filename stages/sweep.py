"""Queue a sweep of params.yaml `sweeps` (:mod:`vaelab.pipeline.sweeps`) in DVC's experiment queue: one
``dvc exp run --queue`` per point of its grid (or, ``--best-at-full-epochs``, per model its best setting at the
study's epochs). Not a DVC stage. Then ``dvc queue start -j 1``, and once ``dvc queue status`` shows none queued or
running, ``python stages/tuning.py <sweep>`` (with the same flag) writes its report."""

import json
import subprocess
from pathlib import Path

import click

from vaelab.core.config import load_params
from vaelab.pipeline.stage import run_stage
from vaelab.pipeline.sweeps import best_commands, queue_commands, sweep_of


def queue(name: str, params_path: str, dry_run: bool, best: bool) -> None:
    params = load_params(params_path)  # the whole file validated, as every stage does
    sweep = sweep_of(params.sweeps, name, params.models)
    commands = best_commands(sweep, json.loads(Path(f"reports/{name}.json").read_text())) if best else queue_commands(sweep)
    for cmd in commands:
        click.echo(" ".join(cmd))
        if not dry_run:
            subprocess.run(cmd, check=True)
    click.echo(f"{len(commands)} experiments {'listed' if dry_run else 'queued'}")


@click.command()
@click.argument("name")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
@click.option("--dry-run", is_flag=True, help="Print the commands, queue nothing.")
@click.option("--best-at-full-epochs", "best", is_flag=True, help="Each model's best setting at the study's epochs.")
def main(name: str, params_path: str, dry_run: bool, best: bool) -> None:
    """Queue every point of sweep NAME (a key of params.yaml `sweeps`)."""
    run_stage(f"sweep {name}", lambda: queue(name, params_path, dry_run, best))


if __name__ == "__main__":
    main()
