"""DVC stage `sbibm`: sbibm's published observations and reference posterior samples for the SBI study's tasks,
taken from the sbibm 1.1.0 wheel on the package index (or $VAELAB_SBIBM_WHEEL, a local copy), every file checked
against its SHA-256 (:mod:`vaelab.sbi.sbibm_files`), into data/sbibm/."""

import os

import click

from vaelab.core.layout import Layout
from vaelab.pipeline.stage import run_stage
from vaelab.sbi.sbibm_files import fetch_sbibm_files


@click.command()
def main() -> None:
    """Fetch and verify sbibm's files for the four tasks (observations 1-10)."""
    run_stage("sbibm", lambda: fetch_sbibm_files(Layout().sbibm, os.environ.get("VAELAB_SBIBM_WHEEL") or None))


if __name__ == "__main__":
    main()
