"""Data spaces: the pixels a model trains and is scored on, one class per space (the registry below).

MNIST's pixels are grey levels x = k/255. A model of params.yaml names its space (``data: grey``); the space
says how a training batch is shown to the model (a fresh draw per batch where the space is random), which
fixed test-time images score it, and what it needs of the pixels. Nothing outside this module compares a
space's name: callers ask the space.

- ``grey``: x = k/255 as they are (the post);
- ``dequantized``: x̃ = (k + u)/256, u ~ U(0, 1) (a density on [0, 1] then bounds the 8-bit likelihood);
- ``binarized``: x ~ Bernoulli(k/255), dynamically in training; scored on one fixed binarisation.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from vaelab.core import streams
from vaelab.core.errors import ConfigError


def dequantize(x: torch.Tensor, source: streams.Source = None) -> torch.Tensor:
    """Uniform dequantisation x̃ = (k + u) / 256 of grey pixels x = k / 255, u ~ U(0, 1) (Theis, van den
    Oord & Bethge 2016, sec. 3.1): a density on x̃ then bounds the discrete 8-bit likelihood, and x̃ lies
    strictly inside (0, 1), so densities with log x or log(1 − x) terms (Beta) stay finite."""
    k = torch.round(x * 255)
    u = streams.uniform(x.shape, source, x)
    # rand() can return 0, and (255 + u)/256 rounds to exactly 1.0 in float32 once u > 1 − 2⁻¹⁶: keep u in
    # [2⁻¹⁶, 1 − 2⁻¹⁶], so x̃ is strictly inside (0, 1) in float32 (a change of the noise on 3e-5 of its range).
    return (k + u.clamp(min=2.0 ** -16, max=1 - 2.0 ** -16)) / 256


def binarize(x: torch.Tensor, source: streams.Source = None) -> torch.Tensor:
    """Dynamic binarisation (Salakhutdinov & Murray 2008): each pixel ~ Bernoulli(grey value)."""
    return streams.bernoulli(x, source)


class DataSpace:
    """Base class. ``open_interval``: every pixel lies strictly inside (0, 1) (what a Beta density needs);
    ``binary``: pixels are 0 or 1 (the binarised yardstick applies)."""

    name: ClassVar[str]
    open_interval: ClassVar[bool] = False
    binary: ClassVar[bool] = False

    def train_view(self, x: torch.Tensor, source: streams.Source = None) -> torch.Tensor:
        """Grey pixels ``x`` as the model sees them in training (random spaces draw from ``source``)."""
        raise NotImplementedError

    def test_images(self, tests: Any) -> torch.Tensor:
        """The fixed test-time images of this space, from the evaluation's test sets
        (:class:`vaelab.studies.scorecard.TestSets`: grey, its seeded dequantisation, the fixed binarisation)."""
        raise NotImplementedError


class Grey(DataSpace):
    name = "grey"

    def train_view(self, x, source=None):
        return x

    def test_images(self, tests):
        return tests.grey.images


class Dequantized(DataSpace):
    name = "dequantized"
    open_interval = True

    def train_view(self, x, source=None):
        return dequantize(x, source)

    def test_images(self, tests):
        return tests.dequantized


class Binarized(DataSpace):
    name = "binarized"
    binary = True

    def train_view(self, x, source=None):
        return binarize(x, source)

    def test_images(self, tests):
        return tests.binarized


# The registry: one line per data space.
SPACES: dict[str, DataSpace] = {cls.name: cls() for cls in (Grey, Dequantized, Binarized)}


def get(name: str, path: str = "data") -> DataSpace:
    """The registered space ``name``; anything else is a ConfigError naming ``path``."""
    if name not in SPACES:
        raise ConfigError(f"{path} = {name!r}: expected one of the data spaces {sorted(SPACES)}")
    return SPACES[name]


def field_metadata() -> dict:
    """Validation metadata for a model config's ``data`` field (see :func:`vaelab.core.config.from_dict`)."""
    return {"check": lambda v: v in SPACES, "expect": f"one of the data spaces {sorted(SPACES)}"}
