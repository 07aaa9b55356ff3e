"""The tuning report of a finished sweep (reports/tuning.md), read from the experiments of `dvc exp show --json`.

"The VAE needed less tuning", the post says. The sweep trains every model over a grid of learning rates and batch
sizes through DVC's queue; for each model this reports the fraction of settings whose test reconstruction error
(summed squared error of the decoded posterior mean, `test.mse` of metrics/train/<model>.json) is within a stated
margin of that model's best setting. README "Sweeps" gives the sweep that feeds it.
"""

from __future__ import annotations

from vaelab.core.errors import ReportError
from vaelab.studies.claims import TUNING_RULE, tuning_fraction
from vaelab.studies.sweeps import tuning_from_exp_show

MARGIN = 0.10
FLAT = 1.01  # max/min error across the sweep below this: the model did not respond to any setting
SWEEP = """for lr in 0.0001 0.0003 0.001 0.003; do for bs in 64 256; do
  dvc exp run --queue -S train.lr=$lr -S train.batch_size=$bs -S 'seeds=[42]' -S train.epochs=5 \\
      train@ae train@ae_post train@vae_mse train@vae_bce
done; done
dvc queue start -j 2      # wait until `dvc queue status` shows none running
PYTHONPATH=src python stages/tuning.py"""


def report(data: list[dict], models: list[str], margin: float) -> str:
    """The tuning report's Markdown: every setting's error per model, and the share of good settings."""
    settings = tuning_from_exp_show(data, models)
    if not settings:
        raise ReportError("no finished experiment with metrics/train/<model>.json test.mse: run the sweep first")
    models = [m for m in models if all(m in s.errors for s in settings)]
    lines = ["# Tuning: how many settings are close to each model's best?", "",
             f"Test reconstruction error (summed squared error per image of the decoded posterior mean, mean over "
             f"the sweep's seeds) for every setting of the sweep. A setting counts as **good** when its error is "
             f"within {margin:.0%} of that model's best setting.", "",
             "| lr | batch | " + " | ".join(models) + " | experiment |", "|---:|---:|" + "---:|" * len(models) + "---|"]
    for s in settings:
        lines.append(f"| {s.lr:g} | {s.batch_size} | " + " | ".join(f"{s.errors[m]:.2f}" for m in models) + f" | {s.exp} |")
    fractions = {m: tuning_fraction([s.errors[m] for s in settings], margin) for m in models}
    lines += ["", "| model | best error | good settings |", "|---|---:|---:|"]
    for m in models:
        best = min(s.errors[m] for s in settings)
        good = round(fractions[m] * len(settings))
        lines.append(f"| {m} | {best:.2f} | {good}/{len(settings)} ({fractions[m]:.0%}) |")
    flat = [m for m in models if max(s.errors[m] for s in settings) < FLAT * min(s.errors[m] for s in settings)]
    if flat:
        lines += ["", f"Read the fractions with the best errors: {', '.join(flat)} moved by less than "
                  f"{FLAT - 1:.0%} across all settings, so every setting is \"good\" for it. Insensitive is not "
                  "easy to tune: an error that does not move with lr or batch size means training did not "
                  "take hold at any of them (the report's \"What it took to reproduce the post\" shows the plain "
                  "AE's collapse)."]
    lines += ["", f"Rule: {TUNING_RULE}", "",
              "No verdict: the sweep trains one seed per setting, and a verdict needs a rule over seeds. The "
              "report's spread across seeds (\"Did the VAE need less tuning?\") is the over-seeds half of this "
              "claim.", "", "## How this was produced", "", "```bash", SWEEP, "```"]
    return "\n".join(lines) + "\n"
