"""The rate–distortion report of a finished sweep: reports/rd.md, its table and reports/figures/rd.png, from the
experiments of `dvc exp show --json` (the queue's sweep; README "Sweeps" gives the sweep that feeds it)."""

from __future__ import annotations

from pathlib import Path

from vaelab.core.errors import ReportError
from vaelab.core.files import atomic_path, write_atomic
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


def write_report(data: list[dict], out_dir: Path) -> Path:
    """reports/rd.md and its figure under ``out_dir``, from the experiments ``data``."""
    try:
        points = points_from_exp_show(data)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ReportError(f"`{COMMAND}` output not understood: {err!r}") from None
    if not points:
        raise ReportError("no finished experiment with metrics/train/vae_*.json test.kl and test.recon")
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
