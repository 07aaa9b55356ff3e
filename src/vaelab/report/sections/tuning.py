"""Section "Did the VAE need less tuning?": the verdicts of the `tuning` sweep (reports/tuning.json, written from
DVC's queue by stages/tuning.py by the rule of params.yaml `tuning`), and the spread across seeds at the study's own
setting."""

from __future__ import annotations

from vaelab.core import stats
from vaelab.core.config import flatten
from vaelab.report.render import Block, Heading, Para, Table
from vaelab.report.sections.cells import Inputs, interval_cells, number_cells
from vaelab.studies import claims
from vaelab.viz.model_figures import model_label


def sweep_blocks(doc: dict) -> list[Block]:
    """The sweep's shares of working settings and its verdicts (none without a finished sweep)."""
    if not doc.get("comparisons"):
        return []
    shares = [[model_label(m), f"{e['share_error']:.0%} ({e['share_error_interval'][0]:.0%}–"
               f"{e['share_error_interval'][1]:.0%})", f"{e['share_latent']:.0%} ({e['share_latent_interval'][0]:.0%}–"
               f"{e['share_latent_interval'][1]:.0%})", str(len(e["settings"]))] for m, e in doc["models"].items()]
    verdicts = [[model_label(c["vae"]), model_label(c["ae"]), "test error" if c["by"] == "error" else "latent (kNN)",
                 f"{c['difference']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}]", f"**{c['verdict']}**"]
                for c in doc["comparisons"]]
    return [Para("The `tuning` sweep (`reports/tuning.md`: the grid, every seed's outcome, the rule and how to re-run "
                 "it) trains both AEs and both VAEs at every setting of its grid with three seeds. Share of the "
                 "settings that work for each model (interval: exact bootstrap over seeds):"),
            Table(["model", "works by test error", "works by the latent", "settings"], shares),
            Table(["VAE", "AE", "judged by", "VAE − AE share [interval]", "verdict"], verdicts)]


def tuning_blocks(inp: Inputs) -> list[Block]:
    """"The VAE needed less tuning": the sweep's verdicts, and the spread across seeds at the default setting."""
    key = "reconstruction.mse_per_image"
    per_model = {m: [flatten(v)[key] for v in inp.evals.get(m, {}).values() if key in flatten(v)] for m in inp.models}
    per_model = {m: values for m, values in per_model.items() if values}
    if not per_model:
        return []
    errors = interval_cells([stats.mean_ci(values) for values in per_model.values()])
    spreads = number_cells([claims.seed_spread(values) for values in per_model.values()])
    rows = [[model_label(m), e, cv] for m, e, cv in zip(per_model, errors, spreads)]
    return [Heading("Did the VAE need less tuning?"),
            *sweep_blocks(inp.tuning),
            Para("At the study's own setting: how much one setting's result moves from seed to seed (coefficient of "
                 "variation of the test squared error per image, sample standard deviation over the mean; lower is "
                 "steadier)."),
            Table(["model", "test squared error / image", "spread across seeds (CV)"], rows)]
