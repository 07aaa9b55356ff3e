"""Charts in the style of :mod:`vaelab.plots`: latent codes as scatter plots coloured by digit, and loss curves.

Pure functions: arrays (numpy or torch) in, a matplotlib Figure out.
"""

from __future__ import annotations

from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

from vaelab.data.mnist import NUM_CLASSES
from vaelab.studies.sweeps import NATS_PER_BIT, Point, rd_curves
from vaelab.viz.images import DIGIT_NORM, DIGITS, as_array, styled


def _latent_axes(ax, limits: tuple[float, float], projected: bool) -> None:
    ax.set_xlim(limits)
    ax.set_ylim(limits)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$" + (" (first two coordinates)" if projected else ""))


@styled
def latent_scatter(codes, labels, limits: tuple[float, float], title: str, projected: bool = False) -> Figure:
    """Codes (first two coordinates) coloured by digit, with a discrete colourbar 0-9."""
    z, y = as_array(codes), as_array(labels)
    fig = Figure(figsize=(6.4, 5.4), layout="constrained")
    ax = fig.add_subplot()
    points = ax.scatter(z[:, 0], z[:, 1], c=y, cmap=DIGITS, norm=DIGIT_NORM, s=2, alpha=0.6, linewidths=0)
    _latent_axes(ax, limits, projected)
    bar = fig.colorbar(points, ax=ax, ticks=range(NUM_CLASSES))
    bar.set_label("digit")
    bar.solids.set_alpha(1.0)
    ax.set_title(title)
    return fig


@styled
def latent_by_digit(codes, labels, limits: tuple[float, float], title: str, projected: bool = False) -> Figure:
    """A 2x5 panel, one digit per panel over all codes in grey, every panel on the same axes."""
    z, y = as_array(codes), as_array(labels)
    fig = Figure(figsize=(12, 5.4), layout="constrained")
    axes = fig.subplots(2, 5, sharex=True, sharey=True)
    for digit, ax in enumerate(axes.flat):
        ax.scatter(z[:, 0], z[:, 1], s=1, color="0.85", linewidths=0, rasterized=True)
        mine = z[y == digit]
        ax.scatter(mine[:, 0], mine[:, 1], s=2, color=DIGITS(digit), linewidths=0)
        _latent_axes(ax, limits, projected)
        ax.label_outer()
        ax.set_title(f"digit {digit} ({len(mine)})")
    fig.suptitle(title)
    return fig


@styled
def loss_curves(histories: dict[str, tuple[Sequence[float], Sequence[float]]], title: str,
                ylabel: str = "test loss") -> Figure:
    """Per-epoch curves of several models overlaid: ``{label: (epochs, values)}``; a log scale when every value
    is positive (a density on [0, 1] can have a negative NLL: then a symmetric-log scale). The legend sits
    right of the axes: inside, ten models' labels cover the curves."""
    fig = Figure(figsize=(8.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for label, (epochs, values) in histories.items():
        ax.plot(epochs, values, marker="o", markersize=3, label=label)
    if all(v > 0 for _, values in histories.values() for v in values):
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        scale = "log scale"
    else:
        ax.set_yscale("symlog", linthresh=10.0)
        scale = "symmetric log scale"
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{ylabel} ({scale})")
    all_epochs = sorted({e for xs, _ in histories.values() for e in xs})
    if len(all_epochs) <= 12:  # a tick per epoch (also keeps a single epoch from getting fractional ticks)
        ax.set_xticks(all_epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.set_title(title)
    return fig


@styled
def rd_figure(points: list[Point], base_beta: float = 1.0, base_latent: int = 2) -> Figure:
    """Distortion against rate: one panel per model, one curve per sweep, points labelled."""
    models = sorted({p.model for p in points})
    if not models:
        raise ValueError("no rate–distortion points to plot")
    fig = Figure(figsize=(6 * len(models), 4.6), layout="tight")
    axes = fig.subplots(1, len(models), squeeze=False)
    styles = {"beta": ("o-", "C0", "β={:g}", lambda p: p.beta),
              "latent_dim": ("s--", "C1", "d={:d}", lambda p: p.latent_dim)}
    for ax, model in zip(axes[0], models):
        for kind, curve in rd_curves(points, model, base_beta, base_latent).items():
            fmt, color, label, value = styles[kind]
            if not curve:
                continue
            ax.plot([p.rate_nats for p in curve], [p.distortion for p in curve], fmt, color=color,
                    label=f"{kind} sweep" + (f" (d={base_latent})" if kind == "beta" else f" (β={base_beta:g})"))
            for p in curve:
                ax.annotate(label.format(value(p)), (p.rate_nats, p.distortion), textcoords="offset points",
                            xytext=(4, 4 if kind == "beta" else -11), fontsize=8, color=color)
        ax.set_title(model)
        ax.set_xlabel("rate: test KL per image (nats)")
        ax.set_ylabel("distortion: test reconstruction term per image")
        top = ax.secondary_xaxis("top", functions=(lambda n: n / NATS_PER_BIT, lambda b: b * NATS_PER_BIT))
        top.set_xlabel("rate (bits)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


@styled
def posterior_contours(grids: list, labels: list[int], title: str) -> Figure:
    """One panel per test digit: the true posterior p(z|x) as filled contours and the encoder's q(z|x) as lines,
    both on the grid of :func:`vaelab.measures.inference.posterior_grid` (one image each); levels at 1, 10 and 50% of
    each density's peak."""
    fig = Figure(figsize=(3.2 * len(grids), 3.4), layout="constrained")
    axes = fig.subplots(1, len(grids), squeeze=False)[0]
    for ax, g, label in zip(axes, grids, labels):
        z1, z2 = as_array(g.z1[0]), as_array(g.z2[0])
        post, q = as_array(g.log_post[0].exp()), as_array(g.log_q[0].exp())
        ax.contourf(z1, z2, post, levels=[post.max() * f for f in (0.01, 0.1, 0.5, 1.0001)], cmap="Blues")
        ax.contour(z1, z2, q, levels=[q.max() * f for f in (0.01, 0.1, 0.5)], colors="C3", linewidths=1)
        ax.set_title(f"digit {label}")
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
    fig.suptitle(title)
    return fig
