"""Section on simulation-based inference (the `sbi@<task>` stages: a CVAE, black-box VI and sbi's NPE on sbibm tasks),
with sbibm's published NPE numbers on the same observations beside vaelab's run."""

from __future__ import annotations

from vaelab.report.render import MISSING, Block, Heading, Image, Para, Table
from vaelab.report.sections.cells import Inputs

NAMES = {"cvae": "CVAE", "bbvi": "BBVI, Gaussian mixture", "bbvi_flow": "BBVI, flow", "npe": "NPE (sbi)"}


def _power(budget: int) -> str:
    """10³-style labels for the budgets sbibm uses, plain numbers otherwise."""
    exponent = len(str(budget)) - 1
    return f"10{str(exponent).translate(str.maketrans('0123456789', '⁰¹²³⁴⁵⁶⁷⁸⁹'))}" if budget == 10 ** exponent \
        else f"{budget:,}"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _cell(entry: dict | None) -> str:
    """Mean ± the half-width of the 95% t-interval over observations (3 decimals); the mean alone for one."""
    if entry is None:
        return MISSING
    if entry["low"] is None:
        return f"{entry['mean']:.3f}"
    return f"{entry['mean']:.3f} ± {(entry['high'] - entry['low']) / 2:.3f}"


def sbi_blocks(inp: Inputs) -> list[Block]:
    """The C2ST table (every task, estimator and budget; sbibm's NPE cited), the protocol with each difference from
    sbibm's, and one pair plot per task."""
    if not inp.sbi:
        return []
    first = next(iter(inp.sbi.values()))
    proto = first["protocol"]
    budgets = proto["budgets"]
    obs = _and([str(k) for k in proto["observations"]])
    rows = []
    for task, doc in inp.sbi.items():
        for name, per_budget in doc["estimators"].items():
            rows.append([f"`{task}`", NAMES.get(name, name), *(_cell(per_budget.get(str(b))) for b in budgets)])
        published = (doc.get("published_npe") or {}).get("these_observations") or {}
        rows.append([f"`{task}`", "NPE, published by sbibm",
                     *(f"{published[str(b)]:.3f}" if published.get(str(b)) is not None else MISSING for b in budgets)])
    return [
        Heading("Simulation-based inference with a conditional VAE"),
        Para("The post ends with a promise: \"how one could then perform variational inference or SBI with "
             "conditional variational autoencoders\". Here it is, on tasks of the simulation-based inference benchmark "
             "(Lueckmann et al. 2021, sbibm). Each estimator learns the posterior p(θ | x) from the same simulations "
             "(θ drawn from the prior, x from the simulator), then draws from it for sbibm's observations; C2ST is the "
             "held-out accuracy of a classifier telling those draws from the reference posterior's (0.5: "
             "indistinguishable, 1: told apart perfectly), with sbibm's classifier and folds."),
        *(Para(f"**{NAMES.get(n, n)}**: {what}.") for n, what in first.get("described", {}).items()),
        Table(["task", "estimator", *(f"C2ST, {_power(b)} simulations" for b in budgets)], rows),
        Para(f"Mean ± half-width of a 95% t-interval over sbibm's observations {obs} (per observation: "
             "`metrics/sbi/<task>.json`). \"NPE, published by sbibm\": the mean of sbibm's own NPE runs on the same "
             "observations (its results table, `main_paper.csv` of sbi-benchmark/results), a number measured under "
             "sbibm's protocol, not ours.", italic=True),
        Heading("The protocol, and what differs from sbibm's", level=3),
        Para(f"sbibm scores every task on observations 1-10 with 10,000 posterior draws against 10,000 reference "
             f"draws, at 10³, 10⁴ and 10⁵ simulations. This study scores observations {obs} with "
             f"{proto['samples']:,} draws against the first {proto['samples']:,} of sbibm's reference draws, at "
             f"{_and([_power(b) for b in budgets])} simulations, because one C2ST of a 10-d posterior takes minutes "
             "on two CPU cores. Fewer draws give the classifier less to learn from, so C2ST here tends to sit closer "
             "to 0.5 than sbibm's for the same posterior, and varies more: compare the rows of one run, and read the "
             "published row as sbibm's scale. One seed for the simulations and the networks' initial weights "
             f"({proto['simulation_seed']}), the same simulations for every estimator; sbibm draws new simulations "
             "per observation. NPE is sbi's, with sbibm's settings (a neural spline flow, training batch 10,000 capped "
             "at the budget, early stopping). The CVAE and BBVI train through vaelab's one loop (Adam; epochs and "
             "batch sizes per budget in params.yaml `sbi`). BBVI needs the task's likelihood, the others only "
             "simulations."),
        *(Image(f"figures/sbi/{task}/pairs.png", f"{task}: posterior draws against the reference")
          for task in inp.sbi),
        Para("Each row: one estimator's draws (colour) over the reference posterior's (grey) for the first scored "
             "observation at the largest budget; a 5-d or 10-d θ shows its first pairs of coordinates.", italic=True),
    ]
