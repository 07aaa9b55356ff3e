"""The figures only a conditional model has: the label chooses the digit, the latent code the style.

Pure like :mod:`vaelab.viz.model_figures` (model + data + settings in, Figures out), which calls these
when ``model.conditional``. Two pictures, both with one column per fixed code and one decoding per label:

- class samples: z ~ N(0, I) decoded with every label 0-9, one row per digit, the same z down a column;
- style transfer: test images encoded with their own label, each code decoded with every label (the
  "analogies" of Kingma, Rezende, Mohamed & Welling 2014, fig. 1): a row keeps its input's slant and
  stroke width across the ten digits.
"""

from __future__ import annotations

from typing import Sequence

import torch
from matplotlib.figure import Figure

from vaelab.data.mnist import IMAGE_SIDE, NUM_CLASSES
from vaelab.models.base import LatentModel
from vaelab.viz import images

PAD = 2  # pixels between tiles


def with_every_label(model: LatentModel, z: torch.Tensor) -> torch.Tensor:
    """[N, 10, 784]: each code of ``z`` [N, d] decoded (the likelihood's mean) with each label 0-9."""
    n = len(z)
    labels = torch.arange(NUM_CLASSES, device=z.device).repeat(n)      # 0..9, 0..9, ...
    return model.mean_image(z.repeat_interleave(NUM_CLASSES, 0), labels).reshape(n, NUM_CLASSES, -1)


@torch.no_grad()
def class_sample_images(model: LatentModel, z: torch.Tensor) -> torch.Tensor:
    """[10, S, 784]: row k decodes the S codes of ``z`` [S, d] with label k (same z down a column)."""
    return with_every_label(model, z).transpose(0, 1)


@torch.no_grad()
def style_transfer_images(model: LatentModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[N, 10, 784]: the posterior mean of each image of ``x`` given its own label ``y``, decoded with each
    label 0-9 (column ``y[i]`` of row i is the plain reconstruction)."""
    return with_every_label(model, model.encode(x, y).mean)


@images.styled
def labelled_grid(tiles, row_labels: Sequence[str], col_labels: Sequence[str], title: str,
                  xlabel: str = "", ylabel: str = "") -> Figure:
    """[rows, cols, 784] images tiled on a grid with a label per row and per column."""
    t = images.as_array(tiles)
    rows, cols = t.shape[:2]
    fig = Figure(figsize=(0.62 * cols + 1.0, 0.62 * rows + 1.0), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(images.tile(t.reshape(rows * cols, -1), cols, pad=PAD), vmin=0.0, vmax=1.0, interpolation="nearest")
    centres = [(IMAGE_SIDE + PAD) * (i + 0.5) for i in range(max(rows, cols))]
    ax.set_xticks(centres[:cols], list(col_labels))
    ax.set_yticks(centres[:rows], list(row_labels))
    ax.tick_params(length=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def class_samples(model: LatentModel, n: int, generator: torch.Generator, title: str) -> Figure:
    """``n`` codes z ~ N(0, I) (drawn with ``generator``), each decoded with every label: one row per digit."""
    z = torch.randn(n, model.cfg.latent_dim, generator=generator)
    return labelled_grid(class_sample_images(model, z.to(model.device)), [str(d) for d in range(NUM_CLASSES)],
                         [""] * n, title, xlabel="the same z ~ N(0, I) down each column", ylabel="label")


def style_transfer(model: LatentModel, x: torch.Tensor, y: torch.Tensor, title: str) -> Figure:
    """Each test image (first column) and its code z ~ q(z|x, y) decoded with every label 0-9."""
    device = model.device
    tiles = torch.cat([x[:, None].to(device), style_transfer_images(model, x.to(device), y.to(device))], dim=1)
    return labelled_grid(tiles, [str(int(d)) for d in y], ["input", *map(str, range(NUM_CLASSES))], title,
                         xlabel="decoded with label", ylabel="test image's digit")
