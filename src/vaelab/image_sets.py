"""Named, seeded subsets of the test set: every number of one table is measured on one of them.

The first N test images are not typical (the first 200 carry 93 units of ink against 104 on average), so a
costly yardstick scores a seeded random subset instead, and records the subset's id beside its numbers. Two
numbers may sit in one table only when their ids agree.
"""

from __future__ import annotations

import torch


def set_id(name: str, n: int | None, seed: int, total: int) -> str:
    """The id recorded beside every number measured on :func:`subset` ``(total, n, seed)``,
    e.g. ``likelihood-2000of10000-seed0`` (``all10000`` when ``n`` is None or covers the set)."""
    size = "all" if n is None or n >= total else f"{n}of"
    return f"{name}-{size}{total}" + ("" if size == "all" else f"-seed{seed}")


def drawn(total: int, n: int | None, seed: int) -> torch.Tensor:
    """The indices of :func:`subset` in the order they were drawn: a smaller ``n`` gives a prefix, so the sets of
    one seed are nested (the first 50 of the 200, the 200 of the 2,000)."""
    if n is None or n >= total:
        return torch.arange(total)
    if n < 1:
        raise ValueError(f"an image set needs at least one image, got n = {n}")
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]


def subset(total: int, n: int | None, seed: int) -> torch.Tensor:
    """Indices of ``n`` of ``total`` test images drawn without replacement by ``seed``, in increasing order
    (all of them when ``n`` is None or ``n >= total``). The same arguments give the same images on any machine:
    the draw is torch's CPU generator, not BLAS."""
    return drawn(total, n, seed).sort().values
