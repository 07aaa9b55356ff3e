"""Is a latent space continuous? The post's claim measured on paths and grids, not by class confidence.

A continuous latent must pass through ambiguous in-between images (a 3 turning into an 8), so "the judge is
confident" is the wrong test. Three measurements instead, the same for an AE (codes in its box) and a VAE
(posterior means in z):

- **paths** (:func:`path_metrics`): fixed pairs of test images (:func:`fixed_pairs`, the same for every model),
  each joined by a straight line between the two codes and decoded at T points. A fragmented latent shows as a
  jump: one step in pixel space much larger than the others (the *jump ratio*, largest step over mean step,
  is 1 for an evenly spaced path) and a path much longer than the distance between its ends (the *path
  ratio*). The *real share* is the share of the intermediate images that pass the realness test.
- **realness** (:class:`Realness`): an image looks like *some* digit when its distance, in the judge's
  features, to its k-th nearest real test image is below the ``quantile`` of the same distance for real test
  images (to their k-th nearest *other* real test image). It asks "is this near the data?", not "which digit?".
- **the model's own grid** (:func:`own_grid`, :func:`grid_metrics`): a grid over the per-axis 1–99% quantiles
  of the model's test codes (so every grid covers its data, AE or VAE), the realness of its tiles, and the
  post's "empty areas": the share of the grid's cells that hold no test code, split by what they decode to.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

Decode = Callable[[Tensor], Tensor]        # codes [N, d] -> mean images [N, 784] in [0, 1]
Features = Callable[[Tensor], Tensor]      # images [N, 784] -> features [N, F] (the judge's)

QUANTILES = (0.01, 0.99)  # the own grid spans these per-axis quantiles of the test codes
CHUNK = 2048              # query rows per distance block (2048 x 10,000 floats = 80 MB)


def kth_distance(queries: Tensor, reference: Tensor, k: int, exclude_self: bool = False) -> Tensor:
    """[N] Euclidean distance of each query to its k-th nearest reference point (``exclude_self``: the queries are
    the reference, and each point's zero distance to itself is skipped)."""
    kk = k + 1 if exclude_self else k
    if kk > len(reference):
        raise ValueError(f"k = {k}: the reference has only {len(reference)} points")
    out = []
    for start in range(0, len(queries), CHUNK):
        d = torch.cdist(queries[start:start + CHUNK], reference)
        out.append(d.topk(kk, dim=1, largest=False).values[:, -1])
    return torch.cat(out) if out else torch.empty(0)


class Realness(NamedTuple):
    """The realness test: reference features, k, and the threshold on the k-th neighbour distance."""

    reference: Tensor
    k: int
    threshold: float

    @classmethod
    def fit(cls, reference: Tensor, k: int, quantile: float) -> "Realness":
        """The threshold is the ``quantile`` of the real images' own k-th neighbour distances (self excluded),
        so a fraction ``quantile`` of real images passes by construction."""
        if not 0 < quantile < 1:
            raise ValueError(f"quantile = {quantile!r}: expected a probability in (0, 1)")
        own = kth_distance(reference, reference, k, exclude_self=True)
        return cls(reference, k, torch.quantile(own, quantile).item())

    def is_real(self, features: Tensor) -> Tensor:
        """[N] bool: each image's k-th neighbour distance to the reference is within the threshold."""
        return kth_distance(features, self.reference, self.k) <= self.threshold


def fixed_pairs(labels: Tensor, n_pairs: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """(first [2n], second [2n], same digit [2n] bool): ``n_pairs`` pairs of different digits, then ``n_pairs``
    of the same digit (two different images), drawn by ``seed`` from the test labels, the same for every model."""
    gen = torch.Generator().manual_seed(seed)
    n = len(labels)
    first = torch.randint(n, (2 * n_pairs,), generator=gen)
    diff_a, diff_b = [], []
    while len(diff_a) < n_pairs:   # rejection: about 9 in 10 random pairs differ in digit
        a, b = torch.randint(n, (2 * n_pairs,), generator=gen), torch.randint(n, (2 * n_pairs,), generator=gen)
        keep = labels[a] != labels[b]
        diff_a += a[keep].tolist()
        diff_b += b[keep].tolist()
    same_a = first[n_pairs:]
    same_b = []
    for i in same_a.tolist():
        pool = torch.nonzero((labels == labels[i]) & (torch.arange(n) != i)).flatten()
        same_b.append(int(pool[torch.randint(len(pool), (1,), generator=gen)]))
    a = torch.tensor(diff_a[:n_pairs] + same_a.tolist())
    b = torch.tensor(diff_b[:n_pairs] + same_b)
    return a, b, torch.arange(2 * n_pairs) >= n_pairs


def paths(decode: Decode, za: Tensor, zb: Tensor, steps: int) -> Tensor:
    """[P, steps, 784] images decoded along the straight lines from ``za`` to ``zb`` (ends included)."""
    t = torch.linspace(0, 1, steps)[None, :, None]
    z = (1 - t) * za[:, None, :] + t * zb[:, None, :]
    return decode(z.reshape(-1, za.shape[1])).reshape(len(za), steps, -1)


class PathStats(NamedTuple):
    jump_ratio: Tensor    # [P] largest step / mean step (1 = evenly spaced)
    path_ratio: Tensor    # [P] path length / distance between the decoded ends
    real_share: Tensor    # [P] share of the intermediate images that pass the realness test


def path_stats(images: Tensor, real: Tensor | None = None) -> PathStats:
    """Per path, from decoded paths [P, T, 784] and (optionally) the realness [P, T] of each image."""
    steps = (images[:, 1:] - images[:, :-1]).norm(dim=-1)
    ends = (images[:, -1] - images[:, 0]).norm(dim=-1)
    length = steps.sum(1)
    tiny = torch.finfo(images.dtype).eps
    jump = steps.max(1).values / (steps.mean(1) + tiny)
    share = (real[:, 1:-1].to(torch.float32).mean(1) if real is not None
             else torch.full((len(images),), float("nan")))
    return PathStats(jump, length / (ends + tiny), share)


def path_metrics(decode: Decode, features: Features, realness: Realness, za: Tensor, zb: Tensor, same: Tensor,
                 steps: int) -> dict[str, float]:
    """The JSON group ``continuity``: jump ratio (mean and median), median path ratio and the real share of the
    intermediate images, over all paths and split into different-digit and same-digit pairs."""
    images = paths(decode, za, zb, steps)
    real = realness.is_real(features(images.reshape(-1, images.shape[-1]))).reshape(len(za), steps)
    st = path_stats(images, real)
    out = {"jump_ratio": st.jump_ratio.mean().item(), "jump_ratio_median": st.jump_ratio.median().item(),
           "path_ratio_median": st.path_ratio.median().item(), "real_share": st.real_share.mean().item()}
    for name, mask in (("different", ~same), ("same", same)):
        if mask.any():
            out[f"jump_ratio_{name}"] = st.jump_ratio[mask].mean().item()
            out[f"real_share_{name}"] = st.real_share[mask].mean().item()
    return out


def own_grid(codes: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """(grid points [size*size, 2], the x edges [size+1], the y edges [size+1]) over the per-axis 1–99% quantiles
    of 2-D ``codes``: cell centres, row-major with the second coordinate decreasing down the rows (as the
    models' ``latent_grid``, so the tiles laid out as an image match a scatter plot)."""
    lo = torch.quantile(codes, QUANTILES[0], dim=0)
    hi = torch.quantile(codes, QUANTILES[1], dim=0)
    ex, ey = (torch.linspace(lo[i].item(), hi[i].item(), size + 1) for i in range(2))
    cx, cy = (ex[:-1] + ex[1:]) / 2, (ey[:-1] + ey[1:]) / 2
    z1, z0 = torch.meshgrid(cy.flip(0), cx, indexing="ij")
    return torch.stack([z0.reshape(-1), z1.reshape(-1)], dim=1), ex, ey


def empty_cells(codes: Tensor, ex: Tensor, ey: Tensor) -> Tensor:
    """[size*size] bool, in :func:`own_grid`'s order: the cells that hold no code (codes outside the box ignored)."""
    size = len(ex) - 1
    ix = torch.bucketize(codes[:, 0].contiguous(), ex[1:-1], right=True)
    iy = torch.bucketize(codes[:, 1].contiguous(), ey[1:-1], right=True)
    inside = (codes[:, 0] >= ex[0]) & (codes[:, 0] <= ex[-1]) & (codes[:, 1] >= ey[0]) & (codes[:, 1] <= ey[-1])
    counts = torch.zeros(size, size, dtype=torch.int64)
    counts.index_put_((iy[inside], ix[inside]), torch.ones(int(inside.sum()), dtype=torch.int64), accumulate=True)
    return (counts.flip(0) == 0).reshape(-1)   # rows top-down: the second coordinate decreasing


def grid_metrics(decode: Decode, features: Features, realness: Realness, codes: Tensor, size: int) -> dict[str, float]:
    """Keys for the JSON group ``grid``: the realness share of the own grid's tiles, the share of its cells that
    hold no test code, how many of those decode to something real or not (shares of all cells), and that share's
    floor (:func:`empty_floor`) and excess over it."""
    grid, ex, ey = own_grid(codes, size)
    real = realness.is_real(features(decode(grid)))
    empty = empty_cells(codes, ex, ey)
    n = float(len(grid))
    floor = empty_floor(codes, size)
    return {"own_real_share": real.to(torch.float32).mean().item(), "empty_share": empty.sum().item() / n,
            "empty_real_share": (empty & real).sum().item() / n, "empty_unreal_share": (empty & ~real).sum().item() / n,
            "empty_floor": floor, "empty_excess": empty.sum().item() / n - floor}


def empty_floor(codes: Tensor, size: int, draws: int = 5, seed: int = 0) -> float:
    """The empty share a smooth, unbroken cloud of codes leaves on its own grid: the mean :func:`empty_cells` share of
    ``draws`` samples, each as large as ``codes``, from the Gaussian fitted to them (their mean and covariance),
    each on its own :func:`own_grid`.

    Not 0: the corners of a box over a round cloud's 1–99% quantiles hold little mass, so a perfect N(0, I) sample
    of 10,000 codes leaves about 2% of a 20 x 20 grid empty. ``empty_share`` minus this floor is the share of empty
    cells that the cloud's shape and size do not explain."""
    z = codes.double()
    mean, cov = z.mean(0), torch.cov(z.T)
    # The smallest jitter that keeps a degenerate (collapsed) cloud's covariance positive definite.
    cov = cov + torch.eye(len(mean), dtype=cov.dtype) * max(cov.diagonal().max().item(), 1.0) * 1e-9
    gaussian = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
    gen = torch.Generator().manual_seed(seed)
    shares = []
    for _ in range(draws):
        noise = torch.randn(len(z), len(mean), generator=gen, dtype=z.dtype)
        sample = (mean + noise @ gaussian.scale_tril.T).to(codes.dtype)
        _, ex, ey = own_grid(sample, size)
        shares.append(empty_cells(sample, ex, ey).to(torch.float64).mean().item())
    return sum(shares) / len(shares)

