"""The rate–distortion report of a finished sweep: reports/rd.md, its table and reports/figures/rd.png, from the
experiments of `dvc exp show --json` (the queue's sweep; README "Sweeps" gives the sweep that feeds it), and the beta at
which `vae_mse`'s rate matches `vae_bce`'s (the sharpness claims' comparator at equal rate)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from vaelab.core.errors import ReportError
from vaelab.core.files import atomic_path, write_atomic
from vaelab.studies.sweeps import Point, points_from_exp_show, rd_curves, table_markdown
from vaelab.viz.charts import rd_figure

COMMAND = "dvc exp show --json"

HOW = """## How this was produced

```bash
{sweep}
PYTHONPATH=src python stages/rd.py      # reads `{command}`, writes reports/rd.md and reports/figures/rd.png
```

Rate is the test KL(q(z|x) || p(z)) per image (`test.kl` of `metrics/train/<model>.json`, mean over seeds), in nats and in
bits (nats / ln 2). Distortion is the model's own test reconstruction term (`test.recon`): nats of
binary cross-entropy for `vae_bce`, the Gaussian's negative log-likelihood for `vae_mse` (half the summed squared
error plus 784 · ½ ln 2π ≈ 720.4 nats) — different scales,
hence one panel per model. Every point is an experiment that differs from the baseline commit
({baseline}) only in that model's `beta` or `latent_dim`; all share the baseline's training settings:
{training}.
"""

MATCHED = """## Matched rate: the Gaussian VAE for the sharpness claims

A σ = 1 Gaussian decoder lowers the rate: at β = 1, `{target}` has {goal:.2f} nats and `{model}` fewer, so a
difference in sharpness between them may come from the rate, not the likelihood. `{model}` reaches `{target}`'s
rate at **β ≈ {beta:.3f}**: between β = {lo:g} ({lo_rate:.2f} nats) and β = {hi:g} ({hi_rate:.2f} nats) of its
sweep, linear in log β. params.yaml's `vae_mse_matched` is `{model}` at β = {beta:.2g}; the sharpness claims are
tested against it too, and its rate as trained is in `metrics/train/vae_mse_matched.json`. (A σ = 1 Gaussian at
β is the objective of σ² = β at β = 1, divided by β: the same optimum.)
"""

NOT_MATCHED = """## Matched rate

No two points of `{model}`'s β sweep bracket `{target}`'s rate at β = 1: no matched β from this sweep.
"""

SWEEP = """for m in vae_bce vae_mse; do
  for b in 0.125 0.25 0.5 2 4; do dvc exp run --queue -S models.$m.beta=$b train@$m; done
  for d in 4 8 16; do dvc exp run --queue -S models.$m.latent_dim=$d train@$m; done
done
dvc queue start -j 1            # one worker per free CPU core; wait until `dvc queue status` shows none running"""


@dataclass(frozen=True)
class MatchedRate:
    """The beta at which ``model``'s rate equals ``target``'s at its baseline, between two swept betas."""
    model: str
    target: str
    rate_nats: float       # the target's rate at the baseline beta and latent size
    below: Point           # the swept points that bracket it
    above: Point
    beta: float            # interpolated linearly in log beta


def matched_beta(points: list[Point], model: str, target: str, base_beta: float = 1.0,
                 base_latent: int = 2) -> MatchedRate | None:
    """The beta of ``model`` whose test KL matches ``target``'s at ``base_beta`` (latent size ``base_latent``):
    linear in log beta between the two neighbouring points of ``model``'s beta sweep that bracket it, or None
    when none do. Rate falls with beta (a larger beta pays more per nat of KL), so a bracket is found by sign."""
    goal = next((p.rate_nats for p in points if (p.model, p.beta, p.latent_dim) == (target, base_beta, base_latent)),
                None)
    if goal is None:
        return None
    curve = rd_curves(points, model, base_beta, base_latent)["beta"]
    for lo, hi in zip(curve, curve[1:]):
        if (lo.rate_nats - goal) * (hi.rate_nats - goal) <= 0 and lo.rate_nats != hi.rate_nats:
            share = (goal - lo.rate_nats) / (hi.rate_nats - lo.rate_nats)
            beta = math.exp(math.log(lo.beta) + share * (math.log(hi.beta) - math.log(lo.beta)))
            return MatchedRate(model, target, goal, lo, hi, beta)
    return None


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
    baseline = (f"`{base['name']}` " if base.get("name") else "") + base["rev"][:7]
    given = ((base["data"].get("params") or {}).get("params.yaml") or {}).get("data") or {}
    training = ", ".join(f"`{k}: {given.get(k.split('.')[0], {}).get(k.split('.')[1])}`"
                         for k in ("data.train_size", "train.epochs", "train.batch_size", "train.lr"))
    write_atomic(md, "# Rate–distortion of the VAEs\n\n![rate–distortion](figures/rd.png)\n\n"
                 + table_markdown(points) + "\n" + _matched(matched_beta(points, "vae_mse", "vae_bce")) + "\n"
                 + HOW.format(sweep=SWEEP, command=COMMAND, baseline=baseline, training=training))
    return md


def _matched(m: MatchedRate | None) -> str:
    if m is None:
        return NOT_MATCHED.format(model="vae_mse", target="vae_bce")
    return MATCHED.format(model=m.model, target=m.target, goal=m.rate_nats, beta=m.beta, lo=m.below.beta,
                          lo_rate=m.below.rate_nats, hi=m.above.beta, hi_rate=m.above.rate_nats)
