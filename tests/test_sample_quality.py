"""FID, KID, precision/recall, density and coverage on cases with known answers."""

from __future__ import annotations

import pytest
import torch

from vaelab.measures.sample_quality import fid, kid, precision_recall


def gaussian(n: int, mean: torch.Tensor, std: torch.Tensor, seed: int) -> torch.Tensor:
    return mean + std * torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_fid_closed_form_for_two_gaussians() -> None:
    # Diagonal covariances: FID = |Δμ|² + Σ_i (σ_i − τ_i)²
    d, n = 4, 200_000
    mu_a, mu_b = torch.zeros(d, dtype=torch.float64), torch.tensor([1.0, 0.0, 0.0, 2.0], dtype=torch.float64)
    s_a, s_b = torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.5, 3.0], dtype=torch.float64)
    expected = (mu_a - mu_b).pow(2).sum().item() + (s_a - s_b).pow(2).sum().item()
    got = fid(gaussian(n, mu_a, s_a, 0), gaussian(n, mu_b, s_b, 1))
    assert got == pytest.approx(expected, rel=0.02)


def test_fid_of_a_set_with_itself_is_zero_and_symmetric() -> None:
    a = gaussian(2000, torch.zeros(8, dtype=torch.float64), torch.ones(8, dtype=torch.float64), 0)
    b = gaussian(2000, torch.ones(8, dtype=torch.float64), torch.ones(8, dtype=torch.float64), 1)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-8)
    assert fid(a, b) == pytest.approx(fid(b, a), rel=1e-8)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_when_shifted() -> None:
    z, o = torch.zeros(8, dtype=torch.float64), torch.ones(8, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    same, std = kid(gaussian(3000, z, o, 0), gaussian(3000, z, o, 1), subsets=20, subset_size=500, generator=g)
    assert abs(same) < 3 * std + 1e-3
    shifted, _ = kid(gaussian(3000, z, o, 0), gaussian(3000, z + 1, o, 1), subsets=20, subset_size=500, generator=g)
    assert shifted > 10 * max(std, 1e-3)


def test_precision_recall_identical_disjoint_and_mode_collapse() -> None:
    z, o = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    real = gaussian(1000, z, o, 0)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    far = gaussian(1000, z + 100, o, 1)
    assert precision_recall(real, far) == (0.0, 0.0)
    # Samples from one small corner of the real distribution: good quality (precision), poor coverage (recall).
    collapsed = gaussian(1000, z + 0.5, o * 0.1, 2)
    precision, recall = precision_recall(real, collapsed)
    assert precision > 0.9 and recall < 0.3


def test_density_and_coverage_of_the_same_distribution_and_of_a_shifted_one() -> None:
    from vaelab.measures.sample_quality import density_coverage

    gen = torch.Generator().manual_seed(0)
    real, same = torch.randn(1000, 8, generator=gen), torch.randn(1000, 8, generator=gen)
    density, coverage = density_coverage(real, same)
    assert 0.8 < density < 1.2 and coverage > 0.9
    far_density, far_coverage = density_coverage(real, same + 3.0)
    assert far_density < 0.05 and far_coverage < 0.1
    # Mode collapse: samples from one corner keep a high density but cover little.
    corner = real[real[:, 0] > 1.0]
    d, c = density_coverage(real, corner[torch.randint(len(corner), (1000,), generator=gen)])
    assert d > 0.5 and c < 0.3


def test_fid_over_disjoint_sets_has_a_spread_and_is_biased_up_at_small_n() -> None:
    from vaelab.measures.sample_quality import fid_sets

    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(2000, 4, generator=gen), torch.randn(2000, 4, generator=gen) + 0.5
    mean, std = fid_sets(real, fake)
    assert std > 0 and mean > fid(real, fake) - 3 * std


def test_one_pass_gives_the_two_searches_numbers() -> None:
    """The evaluation's single pass (real radii searched once, by the references stage) gives exactly the numbers of
    precision_recall's precision and density_coverage, which each search the real neighbours again."""
    from vaelab.measures.sample_quality import RealReference, density_coverage, precision_density_coverage

    gen = torch.Generator().manual_seed(3)
    real, fake = torch.randn(2500, 8, generator=gen), torch.randn(1800, 8, generator=gen) * 1.3 + 0.2
    precision, density, coverage = precision_density_coverage(RealReference.of(real), fake)
    assert precision == precision_recall(real, fake)[0]
    assert (density, coverage) == density_coverage(real, fake)
    assert 0 < precision < 1 and 0 < coverage < 1
