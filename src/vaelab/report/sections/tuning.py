"""Section "Did the VAE need less tuning?": the spread across seeds at the default setting, and the sweep's rule."""

from __future__ import annotations

from vaelab.core import stats
from vaelab.core.config import flatten
from vaelab.report.render import Block, Heading, Para, Table
from vaelab.report.sections.cells import Inputs, interval_cells, number_cells
from vaelab.studies import claims
from vaelab.viz.model_figures import model_label


def tuning_blocks(inp: Inputs) -> list[Block]:
    """"The VAE needed less tuning": the spread across seeds at the default setting (here), and the lr x batch
    sweep (reports/tuning.md, written from DVC's queue by stages/tuning.py)."""
    key = "reconstruction.mse_per_image"
    per_model = {m: [flatten(v)[key] for v in inp.evals.get(m, {}).values() if key in flatten(v)] for m in inp.models}
    per_model = {m: values for m, values in per_model.items() if values}
    if not per_model:
        return []
    errors = interval_cells([stats.mean_ci(values) for values in per_model.values()])
    spreads = number_cells([claims.seed_spread(values) for values in per_model.values()])
    rows = [[model_label(m), e, cv] for m, e, cv in zip(per_model, errors, spreads)]
    return [Heading("Did the VAE need less tuning?"),
            Para("Two pieces of evidence. Here: how much one setting's result moves from seed to seed (coefficient of "
                 "variation of the test squared error per image, sample standard deviation over the mean; lower is "
                 "steadier). The other is an lr × batch-size sweep through DVC's queue (README, \"Sweeps\"), written to "
                 "`reports/tuning.md` by `stages/tuning.py`: for each model the fraction of settings within a margin of "
                 f"its best. Rule: {claims.TUNING_RULE}"),
            Table(["model", "test squared error / image", "spread across seeds (CV)"], rows)]
