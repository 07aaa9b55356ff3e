"""The SBI study's pair plot: each estimator's posterior draws for sbibm's first scored observation against the
reference posterior's, at the largest budget. Pure: the study's results in, a Figure out."""

from __future__ import annotations

from itertools import combinations

from matplotlib.figure import Figure

from vaelab.viz import images

MAX_PAIRS = 3   # a 10-d posterior has 45 pairs of coordinates: the first few show its shape


def coordinate_pairs(dim: int) -> list[tuple[int, int]]:
    """The pairs of θ coordinates drawn: every pair of a 2-d θ, else the first :data:`MAX_PAIRS` of the
    neighbouring ones (θ1-θ2, θ3-θ4, ...) so that each coordinate shows once before any shows twice."""
    neighbours = [(i, i + 1) for i in range(0, dim - 1, 2)]
    rest = [p for p in combinations(range(dim), 2) if p not in neighbours]
    return (neighbours + rest)[:MAX_PAIRS]


@images.styled
def pair_plot(task: str, scored: list, references: dict) -> Figure:
    """One row per estimator, one column per pair of coordinates: the reference draws (grey) under the estimator's
    (colour), for the first observation and the largest budget of ``scored`` (:class:`vaelab.sbi.study.Scored`)."""
    budget = max(s.budget for s in scored)
    rows = [s for s in scored if s.budget == budget]
    first = min(rows[0].c2st)
    reference = images.as_array(references[first])
    pairs = coordinate_pairs(reference.shape[1])
    fig = Figure(figsize=(2.6 * len(pairs) + 0.6, 2.4 * len(rows) + 0.7), layout="constrained")
    axes = fig.subplots(len(rows), len(pairs), squeeze=False)
    for r, s in enumerate(rows):
        draws = images.as_array(s.draws)
        for c, (i, j) in enumerate(pairs):
            ax = axes[r][c]
            ax.scatter(reference[:, i], reference[:, j], s=2, c="0.65", alpha=0.5, linewidths=0, label="reference")
            ax.scatter(draws[:, i], draws[:, j], s=2, c=f"C{r}", alpha=0.5, linewidths=0, label=s.estimator)
            ax.set_xlabel(f"θ{i + 1}")
            ax.set_ylabel(f"θ{j + 1}")
            if c == 0:
                ax.set_title(f"{s.estimator}: C2ST {s.c2st[first]:.3f}", loc="left", fontsize="medium")
    fig.suptitle(f"{task}: posterior draws for sbibm's observation {first}, {budget:,} simulations "
                 "(grey: the reference posterior)")
    return fig
