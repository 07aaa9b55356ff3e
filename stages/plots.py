"""`make plots`: `dvc plots show` (or `dvc plots diff REV...`) as a page that works offline: Vega, Vega-Lite and
vega-embed beside the page (:mod:`vaelab.report.vega`, fetched once from the npm registry and checked), and DVC's
page template pointing at them (.dvc/plots/offline.html). Not a DVC stage."""

import subprocess
from pathlib import Path

import click

from vaelab.pipeline.stage import run_stage
from vaelab.report.vega import TEMPLATE, vendor

STORE = Path(".venv/share/vega")   # the tarballs, fetched once per environment


def plots(revs: tuple[str, ...], out: Path) -> None:
    vendor(out, STORE)
    command = ["dvc", "plots", "diff" if revs else "show", *revs]
    subprocess.run([*command, "--html-template", str(TEMPLATE), "-o", str(out)], check=True)


@click.command()
@click.argument("revs", nargs=-1)
@click.option("--out", default="dvc_plots", show_default=True, help="Folder of index.html and vendor/.")
def main(revs: tuple[str, ...], out: str) -> None:
    """`dvc plots show`, or `dvc plots diff REVS` when revisions are given, into OUT, for a browser offline."""
    run_stage("plots", lambda: plots(revs, Path(out)))


if __name__ == "__main__":
    main()
