"""The figures of one trained model: what to draw, from the model and the test split, by asking the model
(its posterior's mean, its latent box, whether it has a prior to sample), never by testing its kind.

:func:`model_figures` is pure (model + data + settings in, Figures out); :func:`vaelab.viz.images.save_figures` writes PNGs
atomically. The ``figures@<model>`` stage (stages/figures.py) loads, calls these, records and publishes.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from matplotlib.figure import Figure

from vaelab.core.config import FiguresConfig
from vaelab.data.mnist import NUM_CLASSES, Split
from vaelab.measures import continuity, metrics
from vaelab.measures.capabilities import ANY, Needs
from vaelab.models.base import LatentModel
from vaelab.viz import charts, conditional_figures, images

log = logging.getLogger(__name__)


def model_label(name: str) -> str:
    """How figures and the report name a model: ``vae_bce`` -> ``VAE-BCE``."""
    return name.upper().replace("_", "-")


def expected_kinds(model: LatentModel) -> list[str]:
    """The figures drawn for a model, in report order: those of :data:`FIGURES` whose needs it meets."""
    return [kind for kind, needs in FIGURES.items() if needs.met_by(model)]


def by_digit(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of ``n`` test images cycling through the digits 0-9 (the k-th round takes each digit's k-th image)."""
    per_class = [torch.nonzero(labels == d).flatten() for d in range(NUM_CLASSES)]
    return torch.stack([per_class[i % NUM_CLASSES][i // NUM_CLASSES] for i in range(n)])


# Words that differ by capability, asked of the capability registry (the first entry a model meets).
CODE_NAME = ((Needs(prior=True), "posterior mean"), (ANY, "code z"))
GRID_SPAN = ((Needs(box=True), "its latent box"), (ANY, "quantiles of N(0, 1)"))
PLANE = Needs(latent_2d=True)   # a 2-D code is drawn as it is; a larger one by its first two coordinates


def said(table: tuple[tuple[Needs, str], ...], model: LatentModel) -> str:
    """The text of the first row whose needs the model meets (the last row, ANY, meets every model)."""
    return next(text for needs, text in table if needs.met_by(model))


def latent_limits(model: LatentModel, codes: torch.Tensor, vae_range: float | None) -> tuple[float, float]:
    """Scatter axes: the model's latent box (None when unbounded), else ±vae_range, else (null) symmetric
    around the codes."""
    half = vae_range if vae_range is not None else 1.05 * codes[:, :2].abs().max().item()
    return model.latent_box or (-half, half)


class Sheet:
    """What one model's figures share: its codes of the test images, their axes, and the fixed label a conditional
    model draws its grid, samples and paths with (the first test digit's)."""

    def __init__(self, name: str, model: LatentModel, test: Split, fig: FiguresConfig, seed: int) -> None:
        self.model, self.test, self.fig, self.seed, self.cfg = model, test, fig, seed, model.cfg
        self.label = model_label(name)
        self.projected = not PLANE.met_by(model)
        self.proj = f" (projection: first 2 of {self.cfg.latent_dim} latent dims)" if self.projected else ""
        self.y = model.condition(test.labels)
        self.codes = metrics.codes(model, test.images, self.y)
        self.limits = latent_limits(model, self.codes, fig.vae_range)
        self.fixed = model.condition(torch.full((1,), int(test.labels[0])))
        self.given = "" if self.fixed is None else f", label {int(self.fixed)}"

    def labels_for(self, n: int) -> torch.Tensor | None:
        """The fixed label for ``n`` codes (None for an unconditional model)."""
        return None if self.fixed is None else self.fixed.expand(n)


def _reconstructions(s: Sheet) -> Figure:
    idx = by_digit(s.test.labels, s.fig.n_examples)
    return images.reconstructions(s.test.images[idx], s.model.mean_image(s.codes[idx], None if s.y is None else s.y[idx]),
                                  f"{s.label}: test images and their reconstructions")


def _latent(s: Sheet) -> Figure:
    return charts.latent_scatter(s.codes, s.test.labels, s.limits,
                                 f"{s.label}: test set in latent space ({said(CODE_NAME, s.model)}){s.proj}",
                                 s.projected)


def _latent_by_digit(s: Sheet) -> Figure:
    return charts.latent_by_digit(s.codes, s.test.labels, s.limits, f"{s.label}: latent codes by digit{s.proj}",
                                  s.projected)


def _manifold(s: Sheet) -> Figure:
    grid = s.model.latent_grid(s.fig.grid_size)
    return images.manifold(s.model.mean_image(grid, s.labels_for(len(grid))), s.model.latent_axis(s.fig.grid_size),
                           f"{s.label}: decoded latent grid ({said(GRID_SPAN, s.model)}{s.given})")


def _own_grid(s: Sheet) -> Figure:
    """The grid over the model's own codes (1-99% quantiles), as the evaluation scores it."""
    own, _, _ = continuity.own_grid(s.codes, s.fig.grid_size)
    return images.image_grid(s.model.mean_image(own), s.fig.grid_size,
                             f"{s.label}: decoded grid over its own codes' 1–99% quantiles")


def _prior_samples(s: Sheet) -> Figure:
    z = torch.randn(s.fig.samples ** 2, s.cfg.latent_dim, generator=torch.Generator().manual_seed(s.seed))
    return images.image_grid(s.model.mean_image(z, s.labels_for(len(z))), s.fig.samples,
                             f"{s.label}: decoded samples z ~ N(0, I){s.given}")


def _interpolations(s: Sheet) -> Figure:
    # Pair k joins digits k and 3k+7 (mod 10), never the same digit; round k // 10 takes the next images.
    fig = s.fig
    starts = by_digit(s.test.labels, 10 * (fig.interp_pairs // 10 + 1))
    ends = torch.tensor([[k % 10 + 10 * (k // 10), (3 * k + 7) % 10 + 10 * (k // 10)] for k in range(fig.interp_pairs)])
    pairs = starts[ends]  # [pairs, 2] test indices
    t = torch.linspace(0, 1, fig.interp_steps)[None, :, None]
    a, b = s.codes[pairs[:, :1]], s.codes[pairs[:, 1:]]  # [pairs, 1, latent]
    zs = ((1 - t) * a + t * b).reshape(-1, s.cfg.latent_dim)
    paths = s.model.mean_image(zs, s.labels_for(len(zs))).reshape(len(pairs), fig.interp_steps, -1)
    rows = [f"{s.test.labels[i].item()} → {s.test.labels[j].item()}" for i, j in pairs.tolist()]
    return images.interpolations(paths, f"{s.label}: decoded straight lines between test codes{s.given}", rows)


def _class_samples(s: Sheet) -> Figure:
    return conditional_figures.class_samples(s.model, s.fig.samples, torch.Generator().manual_seed(s.seed),
                                             f"{s.label}: one z, every label")


def _style_transfer(s: Sheet) -> Figure:
    one_each = by_digit(s.test.labels, NUM_CLASSES)
    return conditional_figures.style_transfer(s.model, s.test.images[one_each], s.test.labels[one_each],
                                              f"{s.label}: a test image's style, every label")


# Every figure kind a model can have, in report order (file name = kind + ".png"), and what it needs of the model:
# prior samples only with a prior, the manifold only for a 2-D latent, the own-code grid for an unconditional 2-D
# one, class samples and style transfer only for a conditional model (class samples: with a prior).
FIGURES: dict[str, Needs] = {
    "reconstructions": ANY, "latent": ANY, "latent_by_digit": ANY, "manifold": Needs(latent_2d=True),
    "own_grid": Needs(conditional=False, latent_2d=True), "prior_samples": Needs(prior=True), "interpolations": ANY,
    "class_samples": Needs(prior=True, conditional=True), "style_transfer": Needs(conditional=True)}
DRAW: dict[str, Callable[[Sheet], Figure]] = {
    "reconstructions": _reconstructions, "latent": _latent, "latent_by_digit": _latent_by_digit, "manifold": _manifold,
    "own_grid": _own_grid, "prior_samples": _prior_samples, "interpolations": _interpolations,
    "class_samples": _class_samples, "style_transfer": _style_transfer}
KINDS = tuple(FIGURES)


@torch.no_grad()
def model_figures(name: str, model: LatentModel, test: Split, fig: FiguresConfig, seed: int) -> dict[str, Figure]:
    """All figures of one model, keyed by kind (see :func:`expected_kinds`)."""
    model = model.cpu()
    kinds = expected_kinds(model)
    if "manifold" not in kinds:
        log.info("%s: latent size %d, not 2: manifold grid skipped", name, model.cfg.latent_dim)
    sheet = Sheet(name, model, test, fig, seed)
    return {kind: DRAW[kind](sheet) for kind in kinds}
