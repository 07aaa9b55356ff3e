"""How good are a model's samples? Distances between decoded prior samples and real test images in the feature
space of the judge (:mod:`vaelab.measures.judge`, a ≥ 99% CNN), as FID and KID, and precision/recall. Pure torch; the
feature statistics in float64.

- FID (Heusel et al. 2017, eq. 6): |μ_r − μ_g|² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½). Lower is better.
- KID (Bińkowski et al. 2018, sec. 3): the unbiased MMD² with the kernel k(a, b) = (a·b / d + 1)³, averaged
  over random subsets (its mean and standard deviation). Unbiased: ≈ 0 for two samples of one distribution.
- Precision (Kynkäänniemi et al. 2019, sec. 3): the share of generated samples inside the real manifold, the
  union of balls around each real image with radius its distance to its k-th nearest real neighbour.
- Density and coverage (Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models",
  eq. 3-4, k = 5): density, the mean number of real balls each sample lies in, over k (≈ 1 for samples like the
  data); coverage, the share of real images whose ball holds at least one sample.
- Recall (Kynkäänniemi's, real images inside the balls of the *generated* samples) is not reported: the mean
  images decoded from a 2-D latent lie on a 2-D surface in feature space, so the generated k-NN balls are
  slivers that hold almost no real image and recall is ≈ 0 for every model, whatever its diversity. Coverage
  uses the real images' balls instead, which the surface's spread does fill.
- FID over :data:`FID_SETS` disjoint sets (samples and real images each split in equal parts): the spread of
  a smaller-N FID. FID is biased upward at smaller N, so their mean is not comparable with the full-N FID.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaelab.data.mnist import batches


def _sqrtm_trace_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Tr((A B)^½) for symmetric PSD A, B: the eigenvalues of √A B √A are those of A B, and non-negative."""
    ea, va = torch.linalg.eigh(a)
    root_a = (va * ea.clamp(min=0).sqrt()) @ va.T
    return torch.linalg.eigvalsh(root_a @ b @ root_a).clamp(min=0).sqrt().sum()


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ([N, d] each)."""
    r, f = real.double(), fake.double()
    mu_r, mu_f = r.mean(0), f.mean(0)
    cov_r, cov_f = torch.cov(r.T), torch.cov(f.T)
    value = (mu_r - mu_f).pow(2).sum() + cov_r.trace() + cov_f.trace() - 2 * _sqrtm_trace_product(cov_r, cov_f)
    return max(value.item(), 0.0)


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 50, subset_size: int = 1000,
        generator: torch.Generator | None = None) -> tuple[float, float]:
    """Mean and standard deviation over ``subsets`` random subsets of the unbiased MMD² (cubic polynomial kernel)."""
    r, f = real.double(), fake.double()
    d = r.shape[1]
    m = min(subset_size, len(r), len(f))
    values = []
    for _ in range(subsets):
        x = r[torch.randperm(len(r), generator=generator)[:m]]
        y = f[torch.randperm(len(f), generator=generator)[:m]]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off = m * (m - 1)
        values.append((kxx.sum() - kxx.trace()) / off + (kyy.sum() - kyy.trace()) / off - 2 * kxy.mean())
    v = torch.stack(values)
    return v.mean().item(), (v.std().item() if len(v) > 1 else 0.0)


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # |a|² − 2 a·b + |b|², one matrix product (no [n, m, d] tensor)
    return (a.pow(2).sum(1, keepdim=True) - 2 * a @ b.T + b.pow(2).sum(1)).clamp(min=0)


def _knn_radii(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Squared distance of each point to its k-th nearest neighbour in ``x`` (itself excluded)."""
    return torch.cat([_sq_dists(x[i], x).topk(k + 1, dim=1, largest=False).values[:, k]
                      for i in batches(len(x), chunk)])


def _inside(points: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    """Fraction of ``points`` within the radius of at least one member of ``support``."""
    hits = torch.cat([(_sq_dists(points[i], support) <= radii).any(1) for i in batches(len(points), chunk)])
    return hits.double().mean().item()


FID_SETS = 5


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    r, f = real.double(), fake.double()
    return (_inside(f, r, _knn_radii(r, k, chunk), chunk), _inside(r, f, _knn_radii(f, k, chunk), chunk))


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5, chunk: int = 1024) -> tuple[float, float]:
    """(density, coverage) of Naeem et al. 2020 with the real images' k-NN balls."""
    r, f = real.double(), fake.double()
    radii = _knn_radii(r, k, chunk)
    counts = torch.zeros(len(r), dtype=torch.float64)   # per real ball: how many samples it holds
    inside_total = 0.0
    for i in batches(len(f), chunk):
        hit = _sq_dists(f[i], r) <= radii                # [chunk, real]
        inside_total += hit.double().sum().item()
        counts += hit.double().sum(0)
    return inside_total / (k * len(f)), (counts > 0).double().mean().item()


def fid_sets(real: torch.Tensor, fake: torch.Tensor, sets: int = FID_SETS) -> tuple[float, float]:
    """Mean and sample standard deviation of FID over ``sets`` disjoint (real part, sample part) pairs."""
    n_r, n_f = len(real) // sets, len(fake) // sets
    values = torch.tensor([fid(real[i * n_r:(i + 1) * n_r], fake[i * n_f:(i + 1) * n_f]) for i in range(sets)])
    return values.mean().item(), values.std().item()


PRECISION_K, DENSITY_K = 3, 5   # the real k-NN balls of precision (Kynkäänniemi) and of density/coverage (Naeem)
CHUNK = 1024                    # sample rows per distance block (1024 x 10,000 float64 = 80 MB)


@dataclass(frozen=True)
class RealReference:
    """The real images' side of every sample-quality number: their features and the squared radii of their k-NN
    balls. The same for every model and seed, so the ``references`` stage computes it once (a 10k x 10k search)."""

    features: torch.Tensor           # [N, d] judge features of the real images
    precision_radii: torch.Tensor    # [N] float64: squared distance to the PRECISION_K-th real neighbour
    density_radii: torch.Tensor      # [N] float64: ... to the DENSITY_K-th

    @classmethod
    def of(cls, features: torch.Tensor) -> "RealReference":
        """One neighbour search for both radii: the j-th smallest of a row is the same whichever k topk keeps."""
        r = features.double()
        nearest = torch.cat([_sq_dists(r[i], r).topk(DENSITY_K + 1, dim=1, largest=False).values
                             for i in batches(len(r), CHUNK)])
        return cls(features, nearest[:, PRECISION_K].contiguous(), nearest[:, DENSITY_K].contiguous())

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"features": self.features, "precision_radii": self.precision_radii,
                "density_radii": self.density_radii}


def precision_density_coverage(reference: RealReference, fake: torch.Tensor) -> tuple[float, float, float]:
    """Precision, density and coverage from one pass over the sample-to-real distances (the same numbers as
    :func:`precision_recall`'s precision and :func:`density_coverage`, which search twice)."""
    r, f = reference.features.double(), fake.double()
    inside = 0
    holds, counts = 0.0, torch.zeros(len(r), dtype=torch.float64)
    for i in batches(len(f), CHUNK):
        d = _sq_dists(f[i], r)
        inside += (d <= reference.precision_radii).any(1).sum().item()
        hit = d <= reference.density_radii
        holds += hit.double().sum().item()
        counts += hit.double().sum(0)
    return inside / len(f), holds / (DENSITY_K * len(f)), (counts > 0).double().mean().item()


def sample_quality(reference: RealReference, fake_features: torch.Tensor,
                   generator: torch.Generator | None = None) -> dict[str, float]:
    """Every sample-quality number of one model, from the real side (:class:`RealReference`) and the judge
    features of its samples. Recall is not computed (see the module docstring)."""
    real = reference.features
    kid_mean, kid_std = kid(real, fake_features, generator=generator)
    precision, density, coverage = precision_density_coverage(reference, fake_features)
    sets_mean, sets_std = fid_sets(real, fake_features)
    return {"fid": fid(real, fake_features), "fid_sets_mean": sets_mean, "fid_sets_std": sets_std,
            "kid": kid_mean, "kid_std": kid_std, "precision": precision, "density": density, "coverage": coverage}
