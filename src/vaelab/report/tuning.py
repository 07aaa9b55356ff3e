"""The report of a finished sweep (reports/<sweep>.md), from the document :func:`vaelab.studies.tuning.study` builds
out of ``dvc exp show --json``: every setting's per-seed outcome, which settings work for each model, the shares of
working settings with their intervals, and the verdict of each VAE-vs-AE comparison. Every number is read from the
document, which is written beside it (reports/<sweep>.json)."""

from __future__ import annotations

from typing import Any

from vaelab.core.config import TuningConfig
from vaelab.core.errors import ReportError
from vaelab.studies.tuning import FULL_PREFIX, best_working, rule_text

HOW = """PYTHONPATH=src python stages/sweep.py {name}     # queue one experiment per point of params.yaml sweeps.{name}
dvc queue start -j 1                            # wait until `dvc queue status` shows none queued or running
PYTHONPATH=src python stages/tuning.py {name}    # this file and reports/{name}.json"""
HOW_FULL = """PYTHONPATH=src python stages/sweep.py {name} --best-at-full-epochs   # one experiment per model: its best setting
dvc queue start -j 1
PYTHONPATH=src python stages/tuning.py {name} --best-at-full-epochs  # adds the section to this file and the JSON"""


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _seed_cell(seed: dict[str, Any], dead: bool) -> str:
    sat = "" if seed["saturated"] is None else f", sat {seed['saturated']:.2f}"
    return f"{seed['mse']:.1f} / {seed['knn']:.3f}{sat}" + (" **failed**" if dead else "")


def report(doc: dict, name: str) -> str:
    """The sweep's Markdown."""
    if not doc["models"]:
        raise ReportError(f"no finished experiment named {name}-* with metrics/train and metrics/eval of the sweep's "
                          "models: queue and run the sweep first")
    lines = [f"# Sweep `{name}`", "",
             "Written by `stages/tuning.py` from DVC's experiments; every number is in "
             f"`reports/{name}.json`. Each cell: test squared error per image (summed over pixels, grey test images "
             "in [0, 1], all 10,000) / 10-NN digit accuracy of the test codes (fitted on the training codes), and "
             "for bounded codes the share of saturated codes, one cell per seed.", ""]
    span = doc.get("finished")
    if span and span["experiments"] > 1:
        lines += [f"Cost: {span['experiments']} experiments finished over {span['minutes']:.0f} min of wall time on "
                  f"the machine that ran them, about {span['minutes'] / (span['experiments'] - 1):.1f} min each "
                  "(from the first experiment's end to the last's, `dvc queue start -j 1`).", ""]
    lines += ["## Rule (fixed in params.yaml `tuning` before the sweep ran)", "",
              rule_text_of(doc), "",
              "Read the intervals for what they are: an exact bootstrap over the seeds (n seeds: n^n resamples). "
              "With three seeds an interval is a single point when every seed agrees, and it never includes the "
              "uncertainty of the grid's choice of settings, nor of training for fewer epochs than the study.", ""]
    for model, entry in doc["models"].items():
        lines += [f"## {model}", "", "| setting | " + " | ".join(next(iter(entry["settings"]))["seeds"]) +
                  " | works (error) | works (latent) | experiment |", "|---|" + "---|" * (len(
                      next(iter(entry["settings"]))["seeds"]) + 3)]
        for s in entry["settings"]:
            cells = [_seed_cell(v, s["failed"][k]) for k, v in s["seeds"].items()]
            lines.append(f"| {s['key']} | " + " | ".join(cells) +
                         f" | {'yes' if s['works']['error'] else 'no'} | {'yes' if s['works']['latent'] else 'no'} "
                         f"| {s['exp']} |")
        best = best_working(doc, model)
        lines += ["", f"Working by test error: {entry['share_error']:.0%} of the settings (interval over seeds "
                  f"{entry['share_error_interval'][0]:.0%}–{entry['share_error_interval'][1]:.0%}); by the latent: "
                  f"{entry['share_latent']:.0%} ({entry['share_latent_interval'][0]:.0%}–"
                  f"{entry['share_latent_interval'][1]:.0%}). "
                  + (f"Best working setting: {best['key']}." if best else "**No setting works.**"), ""]
    if doc["comparisons"]:
        lines += ["## Did the VAE need less tuning?", "",
                  "| VAE | AE | judged by | share difference (VAE − AE) | interval | verdict |",
                  "|---|---|---|---:|---|---|"]
        for c in doc["comparisons"]:
            lines.append(f"| {c['vae']} | {c['ae']} | {'test error' if c['by'] == 'error' else 'latent (kNN)'} | "
                         f"{c['difference']:+.2f} | [{c['low']:+.2f}, {c['high']:+.2f}] | **{c['verdict']}** |")
        against = [f"{c['vae']} against {c['ae']} ({'test error' if c['by'] == 'error' else 'latent'})"
                   for c in doc["comparisons"] if c["verdict"] == "contradicted"]
        lines += ["", "The post says the VAE needed less tuning. " + (
            f"This sweep contradicts it for {', '.join(against)}: there the AE worked at more settings."
            if against else "This sweep contradicts it nowhere."), ""]
    lines += full_epochs_section(doc.get("full_epochs"), name)
    lines += ["## How this was produced", "", "```bash", HOW.format(name=name), "```", ""]
    if doc.get("full_epochs"):
        lines += ["and the check at the study's epochs:", "", "```bash", HOW_FULL.format(name=name), "```", ""]
    return "\n".join(lines)


def full_epochs_section(full: dict | None, name: str) -> list[str]:
    """Each model's best working setting at the sweep's epochs and at the study's, and whether the ranking holds."""
    if not full or not full["models"]:
        return ["## At the study's epochs", "", "Not checked yet: the best settings have not been re-run at the "
                "study's epochs (commands below).", ""] if full is not None else []
    sweep, epochs = full["sweep_epochs"], full["epochs"]
    lines = ["## At the study's epochs", "",
             f"The sweep trained {sweep} epochs, the study trains {epochs}. Each model's best working setting (by test "
             f"error) was trained again at {epochs} epochs on the same seeds (experiments `{FULL_PREFIX}-{name}-<model>`). "
             "Means over seeds; per-seed values in the JSON.", "",
             f"| model | best setting | test error, {sweep} → {epochs} epochs | kNN accuracy, {sweep} → {epochs} epochs "
             "| experiment |", "|---|---|---:|---:|---|"]
    means = full["means"]
    for model, e in full["models"].items():
        lines.append(f"| {model} | {e['setting']} | {means['sweep']['error'][model]:.2f} → "
                     f"{means['full']['error'][model]:.2f} | {means['sweep']['latent'][model]:.3f} → "
                     f"{means['full']['latent'][model]:.3f} | {e['exp']} |")
    lines.append("")
    for by, words in (("error", "test error (lowest first)"), ("latent", "kNN accuracy (highest first)")):
        r, sign = full["ranking"][by], "<" if by == "error" else ">"
        apart = r.get("apart")
        at_full = r["full"][0] + "".join(f" {sign if a else '≈'} {m}" for a, m in zip(apart, r["full"][1:])) \
            if apart is not None else f" {sign} ".join(r["full"])
        separated = apart is None or all(apart)
        verdict = (("holds" if r["holds"] else "does not hold") if separated else
                   f"{'holds in the means only' if r['holds'] else 'is not established'} at the study's epochs (≈: "
                   "95% intervals over seeds overlap)")
        lines.append(f"- By {words}: {f' {sign} '.join(r['sweep'])} at {sweep} epochs (means); {at_full} at "
                     f"{epochs}: the ranking **{verdict}**.")
    span = full.get("finished")
    if span and span["experiments"] > 1:
        lines.append(f"- Cost: {span['experiments']} experiments finished over {span['minutes']:.0f} min of wall time.")
    return lines + [""]


def rule_text_of(doc: dict) -> str:
    return rule_text(TuningConfig(**doc["rule"]), len(doc["comparisons"]) // 2)
