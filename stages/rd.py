"""The rate–distortion report of a finished sweep: reports/rd.md, its table and reports/figures/rd.png.

Not a DVC stage: it reads the experiments of `dvc exp show --json` (the queue's sweep), which a stage
of the pipeline cannot depend on. See README "Sweeps" for the sweep that feeds it.
"""

import json
import subprocess
from pathlib import Path

import click

from vaelab.core.files import atomic_path, write_atomic
from vaelab.pipeline.stage import run_stage
from vaelab.studies.sweeps import points_from_exp_show, table_markdown
from vaelab.viz.charts import rd_figure

COMMAND = "dvc exp show --json"

HOW = """## How this was produced

```bash
{sweep}
PYTHONPATH=src python stages/rd.py      # reads `{command}`, writes reports/rd.md and reports/figures/rd.png
```

Rate is the test KL(q(z|x) || p(z)) per image (`test.kl` of `metrics/train/<model>.json`, mean over seeds), in nats and in
bits (nats / ln 2). Distortion is the model's own test reconstruction term (`test.recon`): nats of
binary cross-entropy for `vae_bce`, half the summed squared error for `vae_mse` — different units,
hence one panel per model. Every point is an experiment that differs from the baseline commit
({baseline}) only in that model's `beta` or `latent_dim`; all share the baseline's training settings:
{training}.
"""

SWEEP = """for m in vae_bce vae_mse; do
  for b in 0.25 0.5 2 4; do dvc exp run --queue -S models.$m.beta=$b train@$m; done
  for d in 4 8 16; do dvc exp run --queue -S models.$m.latent_dim=$d train@$m; done
done
dvc queue start -j 1            # one worker per free CPU core; wait until `dvc queue status` shows none running"""


def exp_show(path: str | None) -> list[dict]:
    """The experiments, from ``path`` or from `dvc exp show --json` run here; a clear error if neither works."""
    try:
        if path:
            return json.loads(Path(path).read_text())
        out = subprocess.run(COMMAND.split(), capture_output=True, text=True, check=True)
        return json.loads(out.stdout)
    except subprocess.CalledProcessError as err:
        raise click.ClickException(f"`{COMMAND}` exited {err.returncode}: {err.stderr.strip()}") from None
    except (OSError, ValueError) as err:
        raise click.ClickException(f"cannot read the experiments from {path or COMMAND}: {err}") from None


def write_report(data: list[dict], out_dir: Path) -> Path:
    try:
        points = points_from_exp_show(data)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise click.ClickException(f"`{COMMAND}` output not understood: {err!r}") from None
    if not points:
        raise click.ClickException("no finished experiment with metrics/train/vae_*.json test.kl and test.recon")
    base = next(b for b in data if b.get("rev") != "workspace")
    fig = rd_figure(points)
    png = out_dir / "figures" / "rd.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    md = out_dir / "rd.md"
    baseline = f"`{base.get('name') or ''}` {base['rev'][:7]}".strip()
    given = ((base["data"].get("params") or {}).get("params.yaml") or {}).get("data") or {}
    training = ", ".join(f"`{k}: {given.get(k.split('.')[0], {}).get(k.split('.')[1])}`"
                         for k in ("data.train_size", "train.epochs", "train.batch_size", "train.lr"))
    write_atomic(md, "# Rate–distortion of the VAEs\n\n![rate–distortion](figures/rd.png)\n\n"
                 + table_markdown(points) + "\n" + HOW.format(sweep=SWEEP, command=COMMAND, baseline=baseline,
                                                                training=training))
    return md


@click.command()
@click.option("--exp-show-json", default=None, help=f"Read this file instead of running `{COMMAND}`.")
@click.option("--out-dir", default="reports", show_default=True, type=click.Path(file_okay=False))
def main(exp_show_json: str | None, out_dir: str) -> None:
    """Plot test KL (rate) against test reconstruction error (distortion) of the sweep's experiments."""
    run_stage("rd", lambda: click.echo(write_report(exp_show(exp_show_json), Path(out_dir))))


if __name__ == "__main__":
    main()
