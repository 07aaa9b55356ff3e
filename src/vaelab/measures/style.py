"""Does a conditional model's code hold the style? Slant and stroke width, decoded under every label.

The post's follow-up claim (Sohn et al. 2015) is that, given the label, a CVAE's z holds the *style* of a digit,
not the digit. That needs style measured, not only digit information shown absent. Each of N test codes z is
decoded with every label 0–9. Then:

- **label accuracy**: the share of those images the judge classifies as the label asked for (the decoder
  follows the label);
- per image, two style statistics from image moments (:func:`slant`, :func:`stroke_width`);
- **z share** of a statistic: in its N × 10 table (code × label), the share of its variance explained by the
  code: the variance of the per-code means over the total variance. 1 = the style stays with z whatever the
  label; 0 = it follows the label.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

SIDE = 28
INK = 0.5
Decode = Callable[[Tensor, Tensor], Tensor]     # (codes [N, d], labels [N]) -> mean images [N, 784]
Classify = Callable[[Tensor], Tensor]           # images [N, 784] -> predicted labels [N]


def _grid() -> tuple[Tensor, Tensor]:
    rows, cols = torch.meshgrid(torch.arange(SIDE, dtype=torch.float32), torch.arange(SIDE, dtype=torch.float32),
                                indexing="ij")
    return cols.reshape(-1), rows.reshape(-1)   # x to the right, y downwards


def slant(images: Tensor) -> Tensor:
    """[N] the shear of each digit, mu11 / mu02 of the intensity-weighted pixel coordinates: the change of the
    ink's mean column per row downwards (0 upright; positive: the bottom leans right)."""
    x, y = _grid()
    w = images.clamp(min=0)
    mass = w.sum(1).clamp(min=1e-6)
    mx, my = (w * x).sum(1) / mass, (w * y).sum(1) / mass
    dx, dy = x[None] - mx[:, None], y[None] - my[:, None]
    return (w * dx * dy).sum(1) / (w * dy * dy).sum(1).clamp(min=1e-6)


def stroke_width(images: Tensor) -> Tensor:
    """[N] the stroke width in pixels, twice the ink area (pixels > 0.5) over its boundary (ink pixels with a
    4-neighbour outside the ink): a band of width w and length L has area wL and about 2L boundary pixels."""
    ink = (images > INK).reshape(-1, 1, SIDE, SIDE).to(torch.float32)
    cross = torch.tensor([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.float32)[None, None]
    interior = F.conv2d(ink, cross, padding=1) >= 5   # the pixel and its 4 neighbours are all ink
    boundary = ink.bool() & ~interior
    area = ink.sum((1, 2, 3))
    return 2 * area / boundary.sum((1, 2, 3)).clamp(min=1)


def z_share(table: Tensor) -> float:
    """The share of the variance of an [N codes, L labels] table explained by the code: var(row means) / var."""
    total = table.var(unbiased=False)
    return (table.mean(1).var(unbiased=False) / total).item() if total > 0 else 1.0


def style_group(decode: Decode, classify: Classify, codes: Tensor, labels: int = 10) -> dict[str, float]:
    """The JSON group ``style`` of a conditional model, from ``codes`` [N, d] decoded under every label."""
    n = len(codes)
    y = torch.arange(labels).repeat(n)                   # code-major: code i with labels 0..L-1
    images = decode(codes.repeat_interleave(labels, 0), y)
    accuracy = (classify(images) == y).to(torch.float32).mean().item()
    s, w = slant(images).reshape(n, labels), stroke_width(images).reshape(n, labels)
    return {"label_accuracy": accuracy, "slant_z_share": z_share(s), "width_z_share": z_share(w)}
