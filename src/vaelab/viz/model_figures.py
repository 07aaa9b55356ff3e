"""The figures of one trained model: what to draw, from the model and the test split, by asking the model
(its posterior's mean, its latent box, whether it has a prior to sample), never by testing its kind.

:func:`model_figures` is pure (model + data + settings in, Figures out); :func:`save_figures` writes PNGs
atomically. The ``figures@<model>`` stage (stages/figures.py) loads, calls these, records and publishes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from matplotlib.figure import Figure

from vaelab.core.config import FiguresConfig
from vaelab.core.files import atomic_path
from vaelab.data.mnist import NUM_CLASSES, Split
from vaelab.measures import continuity, metrics
from vaelab.models.base import LatentModel
from vaelab.viz import charts, conditional_figures, images

log = logging.getLogger(__name__)
# Every figure kind a model can have, in report order; file name = kind + ".png".
KINDS = ("reconstructions", "latent", "latent_by_digit", "manifold", "own_grid", "prior_samples", "interpolations",
         "class_samples", "style_transfer")
CONDITIONAL_KINDS = ("class_samples", "style_transfer")  # drawn by vaelab.viz.conditional_figures


def model_label(name: str) -> str:
    """How figures and the report name a model: ``vae_bce`` -> ``VAE-BCE``."""
    return name.upper().replace("_", "-")


def expected_kinds(model: LatentModel) -> list[str]:
    """The figures drawn for a model: prior samples only with a prior, the manifold only for a 2-D latent,
    class samples and style transfer only for a conditional model (class samples: with a prior)."""
    return [k for k in KINDS if not ((k in ("prior_samples", "class_samples") and not model.has_prior)
                                     or (k == "manifold" and model.cfg.latent_dim != 2)
                                     or (k == "own_grid" and (model.cfg.latent_dim != 2 or model.conditional))
                                     or (k in CONDITIONAL_KINDS and not model.conditional))]


def by_digit(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of ``n`` test images cycling through the digits 0-9 (the k-th round takes each digit's k-th image)."""
    per_class = [torch.nonzero(labels == d).flatten() for d in range(NUM_CLASSES)]
    return torch.stack([per_class[i % NUM_CLASSES][i // NUM_CLASSES] for i in range(n)])


def latent_limits(model: LatentModel, codes: torch.Tensor, vae_range: float | None) -> tuple[float, float]:
    """Scatter axes: the model's latent box if bounded, else ±vae_range, else (null) symmetric around the codes."""
    if model.latent_box is not None:
        return model.latent_box
    half = vae_range if vae_range is not None else 1.05 * codes[:, :2].abs().max().item()
    return (-half, half)


@torch.no_grad()
def model_figures(name: str, model: LatentModel, test: Split, fig: FiguresConfig, seed: int) -> dict[str, Figure]:
    """All figures of one model, keyed by kind (see :func:`expected_kinds`)."""
    model = model.cpu()
    cfg = model.cfg
    label = model_label(name)
    projected = cfg.latent_dim != 2
    proj = f" (projection: first 2 of {cfg.latent_dim} latent dims)" if projected else ""
    y = test.labels if model.conditional else None
    codes = metrics.codes(model, test.images, y)
    limits = latent_limits(model, codes, fig.vae_range)
    out: dict[str, Figure] = {}

    idx = by_digit(test.labels, fig.n_examples)
    out["reconstructions"] = images.reconstructions(
        test.images[idx], model.mean_image(codes[idx], None if y is None else y[idx]),
        f"{label}: test images and their reconstructions")
    what = "posterior mean" if model.has_prior else "code z"
    out["latent"] = charts.latent_scatter(codes, test.labels, limits, f"{label}: test set in latent space ({what}){proj}",
                                          projected)
    out["latent_by_digit"] = charts.latent_by_digit(codes, test.labels, limits,
                                                    f"{label}: latent codes by digit{proj}", projected)
    # A conditional model draws its grid, samples and paths for one fixed label (the first test digit's).
    fixed = None if y is None else torch.full((1,), int(test.labels[0]))
    given = "" if fixed is None else f", label {int(fixed)}"
    if cfg.latent_dim == 2:
        grid = model.latent_grid(fig.grid_size)
        where = "its latent box" if model.latent_box is not None else "quantiles of N(0, 1)"
        yg = None if fixed is None else fixed.expand(len(grid))
        out["manifold"] = images.manifold(model.mean_image(grid, yg), model.latent_axis(fig.grid_size),
                                          f"{label}: decoded latent grid ({where}{given})")
        if fixed is None:   # the grid over the model's own codes (1-99% quantiles), as the evaluation scores it
            own, _, _ = continuity.own_grid(codes, fig.grid_size)
            out["own_grid"] = images.image_grid(model.mean_image(own), fig.grid_size,
                                                f"{label}: decoded grid over its own codes' 1–99% quantiles")
    else:
        log.info("%s: latent size %d, not 2: manifold grid skipped", name, cfg.latent_dim)
    gen = torch.Generator().manual_seed(seed)
    if model.has_prior:
        z = torch.randn(fig.samples ** 2, cfg.latent_dim, generator=gen)
        ys = None if fixed is None else fixed.expand(len(z))
        out["prior_samples"] = images.image_grid(model.mean_image(z, ys), fig.samples,
                                                 f"{label}: decoded samples z ~ N(0, I){given}")

    # Pair k joins digits k and 3k+7 (mod 10), never the same digit; round k // 10 takes the next images.
    starts = by_digit(test.labels, 10 * (fig.interp_pairs // 10 + 1))
    ends = torch.tensor([[k % 10 + 10 * (k // 10), (3 * k + 7) % 10 + 10 * (k // 10)] for k in range(fig.interp_pairs)])
    pairs = starts[ends]  # [pairs, 2] test indices
    t = torch.linspace(0, 1, fig.interp_steps)[None, :, None]
    a, b = codes[pairs[:, :1]], codes[pairs[:, 1:]]  # [pairs, 1, latent]
    zs = ((1 - t) * a + t * b).reshape(-1, cfg.latent_dim)
    yi = None if fixed is None else fixed.expand(len(zs))
    paths = model.mean_image(zs, yi).reshape(len(pairs), fig.interp_steps, -1)
    rows = [f"{test.labels[i].item()} → {test.labels[j].item()}" for i, j in pairs.tolist()]
    out["interpolations"] = images.interpolations(
        paths, f"{label}: decoded straight lines between test codes{given}", rows)
    if model.conditional:
        if model.has_prior:
            out["class_samples"] = conditional_figures.class_samples(
                model, fig.samples, torch.Generator().manual_seed(seed), f"{label}: one z, every label")
        one_each = by_digit(test.labels, NUM_CLASSES)
        out["style_transfer"] = conditional_figures.style_transfer(
            model, test.images[one_each], test.labels[one_each], f"{label}: a test image's style, every label")
    return out


def save_figures(figs: dict[str, Figure], folder: Path, dpi: int) -> list[Path]:
    """Write ``<kind>.png`` for each figure, each via a temporary file and a rename.

    PNG metadata is fixed (no software version or date), so identical pictures give identical files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, figure in figs.items():
        path = folder / f"{kind}.png"
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=dpi, format="png", metadata={"Software": None})
        written.append(path)
    return written
