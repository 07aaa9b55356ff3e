"""The study's figures as pure functions: arrays in, a matplotlib Figure out (Agg canvas, no pyplot).

Every function draws in one style (:data:`STYLE`), images in grey on the fixed scale [0, 1] and
digits in the ten colours of ``tab10``. Inputs may be numpy arrays or torch tensors; images are
rows of 784 pixels. This module draws images; :mod:`vaelab.viz.charts` draws points and curves in the
same style. Choosing what to draw is :mod:`vaelab.viz.model_figures`' job.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure

from vaelab.core.files import atomic_path
from vaelab.data.mnist import IMAGE_SIDE, NUM_CLASSES

STYLE = {"font.size": 9, "axes.titlesize": 10, "figure.titlesize": 11, "image.cmap": "gray",
         "axes.spines.top": False, "axes.spines.right": False}
DIGITS = matplotlib.colormaps["tab10"]
DIGIT_NORM = BoundaryNorm(np.arange(-0.5, NUM_CLASSES), NUM_CLASSES)  # one colour per digit, no blending


def styled(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Decorator: draw in :data:`STYLE` and attach an Agg canvas to the returned Figure."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> Figure:
        with matplotlib.rc_context(STYLE):
            fig = draw(*args, **kwargs)
        FigureCanvasAgg(fig)  # render with Agg whatever the session's backend
        return fig
    return wrapper


def as_array(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def tile(images, cols: int, pad: int = 0) -> np.ndarray:
    """Lay out [N, 784] images row-major on a grid ``cols`` wide, ``pad`` pixels apart (pad value 1 = white)."""
    x = as_array(images).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    rows = -(-len(x) // cols)
    step = IMAGE_SIDE + pad
    canvas = np.ones((rows * step - pad, cols * step - pad), dtype=np.float32)
    for i, img in enumerate(x):
        r, c = divmod(i, cols)
        canvas[r * step:r * step + IMAGE_SIDE, c * step:c * step + IMAGE_SIDE] = img
    return canvas


def _image(ax, canvas: np.ndarray) -> None:
    ax.imshow(canvas, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


@styled
def data_grid(images, labels, cols: int = 10) -> Figure:
    """Training images on a grid, each with its label in the corner."""
    labels = as_array(labels)
    rows = -(-len(labels) // cols)
    fig = Figure(figsize=(0.62 * cols + 0.4, 0.62 * rows + 0.6), layout="constrained")
    ax = fig.add_subplot()
    _image(ax, tile(images, cols, pad=2))
    for i, label in enumerate(labels):
        r, c = divmod(i, cols)
        ax.text(c * (IMAGE_SIDE + 2) + 1, r * (IMAGE_SIDE + 2) + 1, str(label), color="white", fontsize=7,
                fontweight="bold", va="top", ha="left", bbox={"boxstyle": "square,pad=0.15", "fc": DIGITS(int(label)),
                                                              "ec": "none"})
    ax.set_title("MNIST training images and their labels")
    return fig


@styled
def reconstructions(inputs, outputs, title: str) -> Figure:
    """Inputs (odd rows) above their reconstructions (even rows), ten per row, on the same grey scale."""
    x, y = as_array(inputs), as_array(outputs)
    rows = [part for start in range(0, len(x), 10) for part in (x[start:start + 10], y[start:start + 10])]
    fig = Figure(figsize=(6.6, 0.66 * len(rows) + 0.6), layout="constrained")
    ax = fig.add_subplot()
    _image(ax, tile(np.concatenate(rows), 10, pad=2))
    ax.set_yticks([(IMAGE_SIDE + 2) * (i + 0.5) for i in range(len(rows))],
                  ["input" if i % 2 == 0 else "recon." for i in range(len(rows))])
    ax.set_title(title)
    return fig


@styled
def manifold(images, axis_values, title: str) -> Figure:
    """Decodings of a grid_size x grid_size latent grid (``vaelab.latent.manifold_grid`` order),
    tiled edge to edge, ticks at the latent coordinates of the tiles."""
    axis = as_array(axis_values)
    n = len(axis)
    fig = Figure(figsize=(7.2, 7.4), layout="constrained")
    ax = fig.add_subplot()
    _image(ax, tile(images, n))
    every = max(1, n // 6)
    ticks = [(i + 0.5) * IMAGE_SIDE for i in range(0, n, every)]
    ax.set_xticks(ticks, [f"{axis[i]:.2f}" for i in range(0, n, every)])
    ax.set_yticks(ticks, [f"{axis[n - 1 - i]:.2f}" for i in range(0, n, every)])
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title)
    return fig


@styled
def image_grid(images, cols: int, title: str) -> Figure:
    """Images tiled ``cols`` wide (e.g. samples decoded from the prior)."""
    rows = -(-len(images) // cols)
    fig = Figure(figsize=(0.6 * cols + 0.6, 0.6 * rows + 0.7), layout="constrained")
    ax = fig.add_subplot()
    _image(ax, tile(images, cols, pad=2))
    ax.set_title(title)
    return fig


@styled
def interpolations(paths, title: str, row_labels: Sequence[str] = ()) -> Figure:
    """[pairs, steps, 784]: one straight-line latent path per row, t = 0 on the left to t = 1 on the right."""
    p = as_array(paths)
    pairs, steps = p.shape[:2]
    fig = Figure(figsize=(0.62 * steps + 1.2, 0.62 * pairs + 0.9), layout="constrained")
    ax = fig.add_subplot()
    _image(ax, tile(p.reshape(pairs * steps, -1), steps, pad=2))
    ax.set_xticks([(IMAGE_SIDE + 2) * (i + 0.5) for i in (0, steps - 1)], ["t = 0", "t = 1"])
    if row_labels:
        ax.set_yticks([(IMAGE_SIDE + 2) * (i + 0.5) for i in range(pairs)], list(row_labels))
    ax.set_title(title)
    return fig


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
