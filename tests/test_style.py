"""The CVAE's style statistics: slant and stroke width from image moments, and the share held by the code."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vaelab.data.mnist import load_split
from vaelab.measures import style


@pytest.fixture(scope="module")
def digits(mnist_root) -> torch.Tensor:
    return load_split(mnist_root, "test", 200).images


def sheared(x: torch.Tensor, k: float) -> torch.Tensor:
    theta = torch.tensor([[1.0, k, 0.0], [0.0, 1.0, 0.0]]).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, (len(x), 1, 28, 28), align_corners=False)
    return F.grid_sample(x.reshape(-1, 1, 28, 28), grid, align_corners=False).reshape(len(x), -1)


def test_slant_follows_the_shear(digits) -> None:
    base = style.slant(digits)
    right, left = style.slant(sheared(digits, -0.4)), style.slant(sheared(digits, 0.4))
    assert (right > base).float().mean() > 0.95 and (left < base).float().mean() > 0.95


def test_a_dilated_stroke_is_wider(digits) -> None:
    fat = F.max_pool2d(digits.reshape(-1, 1, 28, 28), 3, stride=1, padding=1).reshape(len(digits), -1)
    assert (style.stroke_width(fat) > style.stroke_width(digits)).float().mean() > 0.95
    bar = torch.zeros(1, 784)
    bar.view(28, 28)[4:24, 10:14] = 1.0                  # a 4-pixel-wide bar
    assert style.stroke_width(bar).item() == pytest.approx(4.0, rel=0.2)


def test_z_share_tells_style_in_the_code_from_style_in_the_label(digits) -> None:
    codes = torch.linspace(-0.4, 0.4, 20)[:, None]     # the code is a shear
    base = digits[:1].expand(10, -1)                    # one digit per label (the "label" picks nothing here)

    def by_code(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([sheared(base[i:i + 1], float(z[j, 0])) for j, i in enumerate(y.tolist())])

    def by_label(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([sheared(base[i:i + 1], (i - 4.5) / 12) for i in y.tolist()])

    label_of = lambda images: torch.zeros(len(images), dtype=torch.int64)   # noqa: E731
    in_code = style.style_group(by_code, label_of, codes)
    in_label = style.style_group(by_label, label_of, codes)
    assert in_code["slant_z_share"] > 0.99 and in_label["slant_z_share"] < 0.01
    assert in_code["label_accuracy"] == pytest.approx(0.1)   # the toy classifier always says 0
