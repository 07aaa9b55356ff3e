"""Random streams for seeds that train side by side: one ``torch.Generator`` per seed.

A model's seeds train as one stacked model (:mod:`vaelab.models.layers`): tensors carry a leading seed
axis ``[S, ...]``. Each seed still draws its own noise (reparameterisation, dequantisation, binarisation)
from its own generator, so a seed's random numbers never depend on how many seeds train beside it. With a
single seed (S = 1) tensors have no seed axis and the one generator draws the whole shape.

Every draw goes through :func:`normal`, :func:`uniform` or :func:`bernoulli`, which also accept a plain
``torch.Generator`` or ``None`` (the global RNG), so evaluation code that draws with one generator and
training code that draws per seed share one API.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch


class Streams:
    """One generator per stacked seed, on ``device``; ``stacked`` says whether tensors carry a seed axis."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        if not seeds:
            raise ValueError("Streams: expected at least one seed")
        self.seeds = list(seeds)
        self.generators = [torch.Generator(device).manual_seed(int(s)) for s in self.seeds]

    @property
    def stacked(self) -> bool:
        return len(self.generators) > 1

    def draw(self, fn, shape: Sequence[int], **kw) -> torch.Tensor:
        """``fn(shape, generator=g, **kw)`` per seed, stacked on a leading axis (``shape`` includes it)."""
        if not self.stacked:
            return fn(tuple(shape), generator=self.generators[0], **kw)
        if shape[0] != len(self.generators):
            raise ValueError(f"Streams: shape {tuple(shape)} has no leading seed axis of {len(self.generators)}")
        return torch.stack([fn(tuple(shape[1:]), generator=g, **kw) for g in self.generators])

    def get_state(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]

    def set_state(self, states: Sequence[torch.Tensor]) -> None:
        for g, s in zip(self.generators, states, strict=True):
            g.set_state(s)


Source = Union[Streams, torch.Generator, None]


def _draw(fn, shape: Sequence[int], source: Source, like: torch.Tensor) -> torch.Tensor:
    kw = {"device": like.device, "dtype": like.dtype}
    if isinstance(source, Streams):
        return source.draw(fn, shape, **kw)
    return fn(tuple(shape), generator=source, **kw)


def normal(shape: Sequence[int], source: Source, like: torch.Tensor) -> torch.Tensor:
    """Standard normals of ``shape`` in the dtype and on the device of ``like``."""
    return _draw(torch.randn, shape, source, like)


def uniform(shape: Sequence[int], source: Source, like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) of ``shape`` in the dtype and on the device of ``like``."""
    return _draw(torch.rand, shape, source, like)


def bernoulli(p: torch.Tensor, source: Source) -> torch.Tensor:
    """x ~ Bernoulli(p) elementwise, as ``torch.bernoulli`` draws it (one uniform per element, x = u < p)."""
    if isinstance(source, Streams) and source.stacked:
        return torch.stack([torch.bernoulli(p[i], generator=g) for i, g in enumerate(source.generators)])
    gen = source.generators[0] if isinstance(source, Streams) else source
    return torch.bernoulli(p, generator=gen)
