"""Named, seeded subsets of the test set: every number of one table is measured on one of them.

The first N test images are not typical (the first 200 carry 93 units of ink against 104 on average), so a
costly yardstick scores a seeded random subset instead, and records the subset's id beside its numbers. Two
numbers may sit in one table only when their ids agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaelab.core.config import EvaluateConfig


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


@dataclass(frozen=True)
class ImageSets:
    """The test subsets one evaluation scores on (:mod:`vaelab.data.image_sets`), and the id of the set behind each
    JSON group (recorded in metrics/eval/<model>.json as ``image_sets``)."""

    likelihood: torch.Tensor       # indices into the test split
    exact: torch.Tensor            # the same permutation's first N: inside ``likelihood``
    binarized: torch.Tensor        # indices into the fixed binarised test set
    binarized_exact: torch.Tensor
    ids: dict[str, str]


def image_sets_for(cfg: EvaluateConfig, n_test: int, n_binarized: int, n_reference: int) -> ImageSets:
    """The subsets of a test split of ``n_test`` images (and a binarised set of ``n_binarized``) by ``cfg``."""
    seed = cfg.image_set_seed
    sets = {"likelihood": (n_test, cfg.likelihood_images), "exact": (n_test, cfg.quadrature_images),
            "binarized": (n_binarized, cfg.binarized_images),
            "binarized_exact": (n_binarized, min(cfg.quadrature_images, cfg.binarized_images or n_binarized))}
    idx = {k: subset(total, n, seed) if n != 0 else torch.empty(0, dtype=torch.int64)
           for k, (total, n) in sets.items()}
    name = {k: set_id(k, n, seed, total) for k, (total, n) in sets.items()}
    whole = set_id("test", None, seed, n_test)
    reference = whole if n_reference >= n_test else f"test-first{n_reference}of{n_test}"
    ids = {"reconstruction": whole, "latent": whole, "continuity": whole, "grid": whole, "sharpness": whole,
           "samples": reference, "elbo": name["likelihood"], "iwae": name["likelihood"],
           "grey8bit": name["likelihood"], "grey8bit_exact": name["exact"], "binarized": name["binarized"],
           "binarized_exact": name["binarized_exact"], "conditional": name["likelihood"], "style": whole}
    return ImageSets(idx["likelihood"], idx["exact"], idx["binarized"], idx["binarized_exact"], ids)
