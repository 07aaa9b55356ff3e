"""Sharpness as the post means it: blur raises the background and the mid-grey share and flattens the strokes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vaelab.data.mnist import load_split
from vaelab.measures import sharpness


@pytest.fixture(scope="module")
def digits(mnist_root) -> torch.Tensor:
    return load_split(mnist_root, "test", 500).images


def blurred(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    r = torch.arange(-3, 4, dtype=torch.float32)
    k = torch.exp(-r ** 2 / (2 * sigma ** 2))
    k = (k[:, None] * k[None, :]) / k.sum() ** 2
    return F.conv2d(x.reshape(-1, 1, 28, 28), k[None, None], padding=3).reshape(len(x), -1).clamp(0, 1)


def test_the_data_has_no_background_colour(digits) -> None:
    assert sharpness.background_on(digits, digits) == 0.0
    assert sharpness.background(digits) < 0.01


def test_blur_raises_background_and_grey_and_lowers_the_stroke_gradient(digits) -> None:
    soft = blurred(digits)
    data, blur = sharpness.statistics(digits, digits), sharpness.statistics(soft, digits)
    assert blur["background"] > data["background"] + 0.01
    assert blur["midgrey"] > data["midgrey"] + 0.02
    assert blur["gradient"] < data["gradient"] - 0.05
    crisp = (digits > 0.5).to(torch.float32)
    sharp = sharpness.statistics(crisp, digits)
    assert sharp["midgrey"] == 0.0 and sharp["gradient"] > data["gradient"]


def test_masks_follow_the_stroke(digits) -> None:
    one = torch.zeros(1, 784)
    one.view(1, 28, 28)[0, 10:18, 14] = 1.0          # a vertical bar
    bg = sharpness.background_mask(one).view(28, 28)
    assert not bg[10:18, 12:17].any() and bg[10:18, 17:].all() and bg[:7].all()
    edge = sharpness.edge_mask(one).view(28, 28)
    assert edge[12, 13] and edge[12, 14] and edge[12, 15] and not edge[12, 17] and not edge[3, 14]


def test_the_group_has_every_row(digits) -> None:
    out = sharpness.sharpness_group(blurred(digits), digits, blurred(digits[:100], 2.0))
    assert {"recon_background", "recon_midgrey", "recon_gradient", "sample_background", "sample_midgrey",
            "sample_gradient"} <= set(out)
    assert not any(k.startswith("data_") for k in out)   # the test images' own row: the references stage's
    assert "sample_midgrey" not in sharpness.sharpness_group(digits, digits, None)


def test_blur_raises_the_background_far_from_ink_at_every_distance(digits) -> None:
    # Known answer: the same digits blurred (sigma 1.5, a 7-pixel kernel) carry grey farther than 1, 2 and 3 px
    # from their own ink; the data does not. The grid group reports the same statistics for decoded tiles.
    soft = blurred(digits, 1.5)
    for margin in (1, 2, 3):
        assert sharpness.background(soft, margin) > sharpness.background(digits, margin) + 0.002
    assert sharpness.background(soft, 1) > sharpness.background(soft, 3)   # nearer the ink, more of the blur
    tiles = sharpness.grid_group(soft)
    assert set(tiles) == {"grid_background_own", "grid_background_own_m1", "grid_background_own_m3", "grid_midgrey"}
    assert tiles["grid_background_own"] == pytest.approx(sharpness.background(soft))
    assert {"sample_background_own_m1", "sample_background_own_m3"} <= set(sharpness.sharpness_group(soft, digits, soft))
