"""Sharpness as the post describes it ("less background colour", "the numbers are clearer"), not squared error.

Squared error rewards blur (a blurred digit is a safe bet), so it cannot test "BCE gives sharper digits". Three
statistics of the images themselves, each also computed on the test data as the reference row:

- **background**: the mean intensity on background pixels (on reconstructions, prior samples and decoded grids). For a reconstruction, the pixels that are 0 in its
  input (:func:`background_on`); for images with no paired input (prior samples, the data itself), the pixels
  more than :data:`MARGIN` pixels (in the max-norm) from every stroke pixel (> 0.5) of the image
  (:func:`background_mask`), a definition applied alike to data, reconstructions and samples.
- **mid-grey share**: the share of pixels in [0.1, 0.9]; MNIST's strokes are mostly 0 or near 1.
- **stroke gradient**: the mean gradient magnitude (central differences) on the stroke's edge pixels, the
  pixels within 1 pixel of the 0.5 level set (a pixel > 0.5 next to one <= 0.5, or the reverse): a crisp
  stroke steps from 0 to 1 within a pixel or two, a blurred one slopes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SIDE = 28
STROKE = 0.5       # a pixel above this is ink
MARGIN = 2         # background for unpaired images: farther than this many pixels from any ink
OTHER_MARGINS = (1, 3)  # the same at these distances (``background_own_m1``..): each claim's robustness check
GREY = (0.1, 0.9)  # a mid-grey pixel lies in this closed range


def _square(x: Tensor) -> Tensor:
    return x.reshape(-1, 1, SIDE, SIDE)


def _dilate(mask: Tensor, radius: int) -> Tensor:
    """[N, 1, 28, 28] bool mask grown by ``radius`` pixels in the max-norm."""
    return F.max_pool2d(mask.to(torch.float32), 2 * radius + 1, stride=1, padding=radius) > 0


def background_mask(images: Tensor, margin: int = MARGIN) -> Tensor:
    """[N, 784] bool: pixels farther than ``margin`` pixels from every ink pixel of the same image."""
    return ~_dilate(_square(images) > STROKE, margin).reshape(len(images), -1)


def _masked_mean(values: Tensor, mask: Tensor) -> float:
    total = mask.sum()
    return (values * mask).sum().item() / total.item() if total > 0 else 0.0


def background_on(images: Tensor, inputs: Tensor) -> float:
    """Mean intensity of ``images`` on the pixels that are 0 in their paired ``inputs`` (reconstructions)."""
    return _masked_mean(images, inputs == 0)


def background(images: Tensor, margin: int = MARGIN) -> float:
    """Mean intensity on each image's own background (:func:`background_mask`), for unpaired images."""
    return _masked_mean(images, background_mask(images, margin))


def midgrey_share(images: Tensor) -> float:
    """Share of all pixels with intensity in [0.1, 0.9]."""
    return ((images >= GREY[0]) & (images <= GREY[1])).to(torch.float32).mean().item()


def edge_mask(images: Tensor) -> Tensor:
    """[N, 784] bool: the pixels within 1 pixel of the stroke's 0.5 level set."""
    ink = _square(images) > STROKE
    return (_dilate(ink, 1) & _dilate(~ink, 1)).reshape(len(images), -1)


def gradient_magnitude(images: Tensor) -> Tensor:
    """[N, 784] |∇x| by central differences (replicate padding), in intensity per pixel."""
    x = F.pad(_square(images), (1, 1, 1, 1), mode="replicate")
    gx = (x[..., 1:-1, 2:] - x[..., 1:-1, :-2]) / 2
    gy = (x[..., 2:, 1:-1] - x[..., :-2, 1:-1]) / 2
    return (gx ** 2 + gy ** 2).sqrt().reshape(len(images), -1)


def stroke_gradient(images: Tensor) -> float:
    """Mean gradient magnitude on the stroke's edge pixels (:func:`edge_mask`)."""
    return _masked_mean(gradient_magnitude(images), edge_mask(images))


def statistics(images: Tensor, inputs: Tensor | None = None) -> dict[str, float]:
    """``background`` (on the inputs' zero pixels when given, else on each image's own background),
    ``background_own`` (always the latter, so that every row compares; ``background_own_m1``.. at OTHER_MARGINS),
    ``midgrey`` and ``gradient``."""
    out = {"background": background_on(images, inputs) if inputs is not None else background(images),
           "background_own": background(images),
           **{f"background_own_m{m}": background(images, m) for m in OTHER_MARGINS},
           "midgrey": midgrey_share(images), "gradient": stroke_gradient(images)}
    return out


def sharpness_group(reconstructions: Tensor, inputs: Tensor, samples: Tensor | None) -> dict[str, float]:
    """The JSON group ``sharpness`` of one model: ``recon_*`` (reconstructions of the test images) and ``sample_*``
    (prior samples, models with a prior). The test images' own ``data_*`` row, the same for every model, is the
    ``references`` stage's (:mod:`vaelab.studies.references`)."""
    out = {f"recon_{k}": v for k, v in statistics(reconstructions, inputs).items()}
    if samples is not None:
        out.update({f"sample_{k}": v for k, v in statistics(samples).items() if k != "background_own"})
    return out


def grid_group(tiles: Tensor) -> dict[str, float]:
    """``grid_*`` of the JSON group ``sharpness``: the decoded latent grid's own background (at MARGIN and
    OTHER_MARGINS) and mid-grey share: the pictures the post was describing."""
    return {f"grid_{k}": v for k, v in statistics(tiles).items() if k.startswith("background_own") or k == "midgrey"}
