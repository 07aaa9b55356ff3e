"""Section "The post's claims": the verdict of each claim, its numbers, and the same test with every other model
in either role (the forking paths)."""

from __future__ import annotations

from vaelab.core import stats
from vaelab.report.render import MISSING, Block, Heading, Para, Table
from vaelab.report.sections.cells import interval_cells, shared_decimals
from vaelab.studies import claims
from vaelab.viz.model_figures import model_label


# The commit that fixed params.yaml `claims:` (measures, margins, comparators, variants) before the 10-seed run that
# decides them. tests/test_report_tables.py checks that the claims have not changed since: a claim changed after it
# is exploratory, and this line moves only with a new run that decides it.
CLAIMS_FIXED_AT = "6573a1d"


def _claim_numbers(v: claims.Verdict) -> tuple[str, str]:
    """A claim's per-seed differences and their interval, to the interval's decimal places."""
    decimals = shared_decimals([v.interval])
    if decimals is None:
        return ", ".join(f"{d:.3g}" for d in v.differences), stats.format_interval(v.interval)
    return ", ".join(f"{d:.{decimals}f}" for d in v.differences), interval_cells([v.interval])[0]



def _margin(v: claims.Verdict) -> str:
    return f"± {v.spec.margin:g}"



def _verdict(v: claims.Verdict) -> str:
    # "Real but negligible" says nothing of the sign: a small effect against the claim is said so.
    against = v.verdict == claims.NEGLIGIBLE and v.interval.mean < 0
    return f"**{v.verdict}**" + (" (against the claim)" if against else "")



def _fork_cell(v: claims.Verdict | None) -> str:
    if v is None:
        return MISSING
    if not v.interval.defined:
        return f"{v.verdict} (n = {v.interval.n})"
    return f"{v.verdict} {stats.format_interval(v.interval, digits=1)}"



def fork_table(verdicts: list[claims.Verdict], forks: list[dict[str, dict[str, claims.Verdict]]], role: str,
               models: list[str]) -> Table:
    """One row per claim, one column per other model put in ``role``: its verdict and 95% interval (uncorrected)."""
    rows = [[f"{i + 1}. {model_label(v.spec.model) if role == 'baseline' else model_label(v.spec.baseline)}",
             *[_fork_cell(f.get(role, {}).get(m)) for m in models]] for i, (v, f) in enumerate(zip(verdicts, forks))]
    head = "claim: its fixed comparator" if role == "model" else "claim: its favoured model"
    return Table([head, *[model_label(m) for m in models]], rows)



def robustness_table(verdicts: list[claims.Verdict], robust: list[dict[str, claims.Verdict]]) -> Table:
    """One row per claim with variants: its verdict alone (95%, uncorrected) with its metric and with each variant."""
    rows = [[f"{i + 1}. {v.spec.claim}", "; ".join(f"`{m}`: {_fork_cell(r)}" for m, r in robust[i].items()),
             "yes" if claims.holds_across(robust[i]) else "**no: depends on the setting**"]
            for i, v in enumerate(verdicts) if i < len(robust) and len(robust[i]) > 1]
    return Table(["claim", "verdict alone (95%) at each setting", "holds across settings"], rows)



def claims_blocks(verdicts: list[claims.Verdict], forks: list[dict[str, dict[str, claims.Verdict]]] | None = None,
                  models: list[str] | None = None, robust: list[dict[str, claims.Verdict]] | None = None,
                  fixed_at: str = CLAIMS_FIXED_AT) -> list[Block]:
    rows = [[f"{i + 1}. {v.spec.claim}", f"`{v.spec.metric}` ({v.spec.better} is better): {v.spec.why}",
             f"{model_label(v.spec.model)} vs {model_label(v.spec.baseline)} (n = {v.interval.n})",
             *_claim_numbers(v), f"{100 * v.interval.level:.2f}".rstrip("0").rstrip(".") + "%", _margin(v), _verdict(v)]
            for i, v in enumerate(verdicts)]
    blocks: list[Block] = [
        Heading("The post's claims, tested over seeds"),
        Para(f"Rule: {claims.RULE} Also in `metrics/claims.json`."
             + (f" The claims' measures, margins, comparators and variants were fixed in params.yaml at commit "
                f"`{fixed_at}`, before the run that decides them; a claim that needs another measure after it is "
                "exploratory." if fixed_at else "")),
        Table(["claim", "metric, and why it tests the claim", "model vs comparator", "per-seed differences",
               "mean and interval", "level (Holm)", "margin", "verdict"], rows)]
    if robust and any(len(r) > 1 for r in robust):
        blocks += [
            Para("**Robustness to the measures' free settings.** Each claim with variants in params.yaml is judged "
                 "alone (95%, no correction) with its own metric and with the same quantity at other settings of "
                 "its measure (the realness quantile, the persistence level of a break, the grid size, the distance "
                 "from ink). A claim whose verdict changes across them depends on the setting."),
            robustness_table(verdicts, robust)]
    if forks and models:
        blocks += [
            Para("**Forking paths.** Each claim's comparator is fixed in params.yaml. Below, the same rule (95%, no "
                 "correction: these are not in the family) with every other model that has the metric in the "
                 "favoured model's place (first table) or in the comparator's place (second). A claim that holds "
                 "only for the chosen pair is visible here."),
            fork_table(verdicts, forks, "model", models),
            fork_table(verdicts, forks, "baseline", models)]
    return blocks
