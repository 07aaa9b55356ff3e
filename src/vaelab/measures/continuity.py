"""Is a latent space continuous? The post's claim measured on paths and grids, not by class confidence.

A continuous latent must pass through ambiguous in-between images (a 3 turning into an 8), so "the judge is
confident" is the wrong test. Three measurements instead, the same for an AE (codes in its box) and a VAE
(posterior means in z):

- **paths** (:func:`path_metrics`): fixed pairs of test images (:func:`fixed_pairs`, the same for every model),
  each joined by a straight line between the two codes and decoded at T points. A fragmented latent shows as a
  jump: one step in pixel space much larger than the others (the *jump ratio*, largest step over mean step,
  is 1 for an evenly spaced path) and a path much longer than the distance between its ends (the *path
  ratio*). The *real share* is the share of the intermediate images that pass the realness test. The jump ratio
  also grows where a path merely speeds up (crossing a crowded region): a *break* (:func:`persistence`) is a jump
  that keeps its size when the path is decoded at many more points, which uneven speed does not.
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
# The measures' free settings, each claim's verdict is also recomputed at the others (params.yaml claims `variants`):
OTHER_QUANTILES = (0.90, 0.99)   # the realness quantile (params evaluate.realness_quantile is the main one)
FINE_STEPS = 256                 # a path re-decoded at this many points: a break persists, uneven speed shrinks
PERSISTS = (0.5, 0.25, 0.75)     # a path breaks when its largest fine step keeps this share of its largest coarse one
OTHER_GRIDS = (10, 40)           # the empty share's excess also on grids of these sizes (evaluate.grid_size the main)
PATH_CHUNK = 64                  # paths per fine decode (64 x 256 x 784 floats = 51 MB)


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
    others: tuple[tuple[float, float], ...] = ()   # (quantile, threshold) at OTHER_QUANTILES: the robustness checks

    @classmethod
    def fit(cls, reference: Tensor, k: int, quantile: float, others: tuple[float, ...] = OTHER_QUANTILES) -> "Realness":
        """The threshold is the ``quantile`` of the real images' own k-th neighbour distances (self excluded),
        so a fraction ``quantile`` of real images passes by construction; ``others``, the same at other quantiles."""
        for q in (quantile, *others):
            if not 0 < q < 1:
                raise ValueError(f"quantile = {q!r}: expected a probability in (0, 1)")
        own = kth_distance(reference, reference, k, exclude_self=True)
        return cls(reference, k, torch.quantile(own, quantile).item(),
                   tuple((q, torch.quantile(own, q).item()) for q in others))

    def is_real(self, features: Tensor) -> Tensor:
        """[N] bool: each image's k-th neighbour distance to the reference is within the threshold."""
        return kth_distance(features, self.reference, self.k) <= self.threshold

    def is_real_at_others(self, features: Tensor) -> dict[str, Tensor]:
        """``{"" : is_real, "_q90": ..., "_q99": ...}``: the test at the main and the other quantiles, one search."""
        distance = kth_distance(features, self.reference, self.k)
        return {"": distance <= self.threshold,
                **{f"_q{round(100 * q)}": distance <= threshold for q, threshold in self.others}}


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
    mean = steps.mean(1)
    # A path whose images do not move (a collapsed model) has no ratio: nan, not an eps-guarded 0/0.
    jump = torch.where(mean > tiny, steps.max(1).values / mean.clamp_min(tiny), torch.tensor(float("nan")))
    share = (real[:, 1:-1].to(torch.float32).mean(1) if real is not None
             else torch.full((len(images),), float("nan")))
    return PathStats(jump, length / (ends + tiny), share)


def _mean(values: Tensor) -> float | None:
    """The mean over the defined (finite) values; None when none is (a collapsed model: not applicable)."""
    finite = values[torch.isfinite(values)]
    return finite.mean().item() if len(finite) else None


def _median(values: Tensor) -> float | None:
    finite = values[torch.isfinite(values)]
    return finite.median().item() if len(finite) else None


def _largest_step(images: Tensor) -> Tensor:
    """[P] the largest step, in pixel space, of each decoded path [P, T, 784]."""
    return (images[:, 1:] - images[:, :-1]).norm(dim=-1).max(1).values


def persistence(decode: Decode, za: Tensor, zb: Tensor, coarse: int, fine: int = FINE_STEPS) -> Tensor:
    """[P] the largest step of each path decoded at ``fine`` points over its largest step at ``coarse`` points.

    A break in the latent (the decoded image jumps between two nearby codes) keeps its step however finely the
    path is decoded: about 1. A smooth path's steps shrink with the spacing: about (coarse − 1) / (fine − 1),
    0.06 for 16 and 256, however unevenly it moves. nan for a path whose images do not move."""
    out = []
    for start in range(0, len(za), PATH_CHUNK):
        a, b = za[start:start + PATH_CHUNK], zb[start:start + PATH_CHUNK]
        largest = [_largest_step(paths(decode, a, b, t)) for t in (coarse, fine)]
        tiny = torch.finfo(largest[0].dtype).eps
        out.append(torch.where(largest[0] > tiny, largest[1] / largest[0].clamp_min(tiny), torch.tensor(float("nan"))))
    return torch.cat(out) if out else torch.empty(0)


def break_share(persist: Tensor, at: float) -> float | None:
    """The share of the paths (that move) whose largest step persists above ``at`` when decoded finely."""
    moving = persist[torch.isfinite(persist)]
    return (moving > at).to(torch.float32).mean().item() if len(moving) else None


def path_metrics(decode: Decode, features: Features, realness: Realness, za: Tensor, zb: Tensor, same: Tensor,
                 steps: int) -> dict[str, float | None]:
    """The JSON group ``continuity``: jump ratio (mean and median; None for a collapsed model), median path ratio,
    the real share of the intermediate images (also at the other realness quantiles: ``real_share_q90``..), over all
    paths and split into different-digit and same-digit pairs, and the share of paths with a break that persists when
    decoded at FINE_STEPS points (``break_share``, and at the other persistence levels: ``break_share_p25``..)."""
    images = paths(decode, za, zb, steps)
    reals = {k: v.reshape(len(za), steps) for k, v in
             realness.is_real_at_others(features(images.reshape(-1, images.shape[-1]))).items()}
    st = path_stats(images, reals[""])
    out = {"jump_ratio": _mean(st.jump_ratio), "jump_ratio_median": _median(st.jump_ratio),
           "path_ratio_median": _median(st.path_ratio), "real_share": st.real_share.mean().item()}
    for suffix, real in reals.items():
        if suffix:
            out[f"real_share{suffix}"] = real[:, 1:-1].to(torch.float32).mean().item()
    for name, mask in (("different", ~same), ("same", same)):
        if mask.any():
            out[f"jump_ratio_{name}"] = _mean(st.jump_ratio[mask])
            out[f"real_share_{name}"] = st.real_share[mask].mean().item()
    persist = persistence(decode, za, zb, steps)
    for i, at in enumerate(PERSISTS):
        out["break_share" + (f"_p{round(100 * at)}" if i else "")] = break_share(persist, at)
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


def empty_excess(codes: Tensor, size: int) -> float:
    """The share of the own grid's empty cells above :func:`empty_floor`, on a ``size`` x ``size`` grid."""
    _, ex, ey = own_grid(codes, size)
    return empty_cells(codes, ex, ey).to(torch.float64).mean().item() - empty_floor(codes, size)


def grid_metrics(decode: Decode, features: Features, realness: Realness, codes: Tensor, size: int) -> dict[str, float]:
    """Keys for the JSON group ``grid``: the realness share of the own grid's tiles, the share of its cells that
    hold no test code, how many of those decode to something real or not (shares of all cells), and that share's
    floor (:func:`empty_floor`) and excess over it (also on grids of OTHER_GRIDS sizes: ``empty_excess_g10``..)."""
    grid, ex, ey = own_grid(codes, size)
    real = realness.is_real(features(decode(grid)))
    empty = empty_cells(codes, ex, ey)
    n = float(len(grid))
    floor = empty_floor(codes, size)
    return {"own_real_share": real.to(torch.float32).mean().item(), "empty_share": empty.sum().item() / n,
            "empty_real_share": (empty & real).sum().item() / n, "empty_unreal_share": (empty & ~real).sum().item() / n,
            "empty_floor": floor, "empty_excess": empty.sum().item() / n - floor,
            **{f"empty_excess_g{g}": empty_excess(codes, g) for g in OTHER_GRIDS}}


def empty_floor(codes: Tensor, size: int, draws: int = 5, seed: int = 0) -> float:
    """The empty share a smooth, unbroken cloud of codes leaves on its own grid: the mean :func:`empty_cells` share of
    ``draws`` samples, each as large as ``codes``, from the Gaussian fitted to them (their mean and covariance),
    each on its own :func:`own_grid`.

    Not 0: the corners of a box over a round cloud's 1–99% quantiles hold little mass, so a perfect N(0, I) sample
    of 10,000 codes leaves about 2% of a 20 x 20 grid empty. ``empty_share`` minus this floor is the share of empty
    cells that the cloud's shape and size do not explain."""
    z = codes.double()
    mean, cov = z.mean(0), torch.cov(z.T)
    # A small jitter (relative to the largest variance) keeps a degenerate (collapsed) cloud's covariance positive
    # definite, so that its Cholesky factor exists.
    cov = cov + torch.eye(len(mean), dtype=cov.dtype) * max(cov.diagonal().max().item(), 1.0) * 1e-9
    scale = torch.linalg.cholesky(cov)
    gen = torch.Generator().manual_seed(seed)
    shares = []
    for _ in range(draws):
        noise = torch.randn(len(z), len(mean), generator=gen, dtype=z.dtype)
        sample = (mean + noise @ scale.T).to(codes.dtype)
        _, ex, ey = own_grid(sample, size)
        shares.append(empty_cells(sample, ex, ey).to(torch.float64).mean().item())
    return sum(shares) / len(shares)

