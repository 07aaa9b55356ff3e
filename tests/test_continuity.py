"""Continuity measured on paths and grids: a jump in the decoder shows; the realness test tells digits from noise."""

from __future__ import annotations

import pytest
import torch

from vaelab.data.mnist import load_split
from vaelab.measures import continuity

PIXELS = 784


@pytest.fixture(scope="module")
def test_images(mnist_root) -> tuple[torch.Tensor, torch.Tensor]:
    test = load_split(mnist_root, "test", 1200)
    return test.images, test.labels


def smooth_decoder() -> continuity.Decode:
    w = torch.randn(2, PIXELS, generator=torch.Generator().manual_seed(0))
    return lambda z: torch.sigmoid(z @ w)


def fragmented_decoder() -> continuity.Decode:
    """The smooth decoder plus a different random image in each of 8 bands of z0: jumps at the band edges."""
    smooth = smooth_decoder()
    patches = torch.rand(8, PIXELS, generator=torch.Generator().manual_seed(1))
    return lambda z: 0.5 * smooth(z) + 0.5 * patches[(z[:, 0].clamp(-1, 0.999) * 4 + 4).long().clamp(0, 7)]


def test_a_fragmented_latent_ranks_below_a_smooth_one() -> None:
    gen = torch.Generator().manual_seed(2)
    za, zb = torch.rand(200, 2, generator=gen) * 2 - 1, torch.rand(200, 2, generator=gen) * 2 - 1
    smooth = continuity.path_stats(continuity.paths(smooth_decoder(), za, zb, 16))
    broken = continuity.path_stats(continuity.paths(fragmented_decoder(), za, zb, 16))
    assert smooth.jump_ratio.median() < 2.0 < broken.jump_ratio.median()
    assert smooth.path_ratio.median() < 1.2 < broken.path_ratio.median()


def test_a_break_persists_when_decoded_finely_and_uneven_speed_does_not() -> None:
    # Known answers: a decoder that speeds up tenfold in the middle of the path (smooth, uneven) against one with a
    # cut at z0 = 0.37 (a real break). At 16 points both show a large jump ratio; at 256 only the cut keeps its step.
    def uneven(z: torch.Tensor) -> torch.Tensor:
        x = z[:, :1]
        warped = torch.where(x < 0.45, x, torch.where(x < 0.55, 0.45 + 10 * (x - 0.45), 1.45 + (x - 0.55)))
        return warped.expand(len(z), PIXELS) / 10
    cut = lambda z: (z[:, :1] > 0.37).to(torch.float32).expand(len(z), PIXELS) + z[:, :1] / 10  # noqa: E731
    za, zb = torch.zeros(20, 2), torch.ones(20, 2)
    assert continuity.path_stats(continuity.paths(uneven, za, zb, 16)).jump_ratio.min() > 3
    smooth, broken = continuity.persistence(uneven, za, zb, 16), continuity.persistence(cut, za, zb, 16)
    assert smooth.max() < 0.25 and broken.min() > 0.9
    assert continuity.break_share(smooth, 0.5) == 0.0 and continuity.break_share(broken, 0.5) == 1.0


def test_a_collapsed_decoder_has_no_jump_ratio_and_no_break_share(test_images) -> None:
    # Every code decodes to the same image: nothing moves, so the ratios are not applicable (None), not 0.
    images, labels = test_images
    realness = continuity.Realness.fit(images[:1000], k=5, quantile=0.95)
    still = lambda z: images[:1].expand(len(z), PIXELS)   # noqa: E731
    codes = torch.rand(1000, 2, generator=torch.Generator().manual_seed(6))
    a, b, same = continuity.fixed_pairs(labels[:1000], 10, seed=0)
    out = continuity.path_metrics(still, lambda x: x, realness, codes[a], codes[b], same, 8)
    assert out["jump_ratio"] is None and out["jump_ratio_same"] is None and out["break_share"] is None
    assert out["real_share"] in (0.0, 1.0)


def test_the_realness_quantile_orders_its_variants(test_images) -> None:
    images, _ = test_images
    realness = continuity.Realness.fit(images[:1000], k=5, quantile=0.95, others=(0.90, 0.99))
    shares = {k: v.to(torch.float32).mean().item() for k, v in realness.is_real_at_others(images[1000:]).items()}
    assert set(shares) == {"", "_q90", "_q99"}
    assert shares["_q90"] <= shares[""] <= shares["_q99"]
    assert torch.equal(realness.is_real_at_others(images[1000:])[""], realness.is_real(images[1000:]))


def test_an_evenly_spaced_path_has_jump_ratio_one() -> None:
    line = lambda z: z[:, :1].expand(len(z), PIXELS) / 10   # noqa: E731 - linear in z: equal steps
    st = continuity.path_stats(continuity.paths(line, torch.zeros(3, 2), torch.ones(3, 2), 9))
    assert torch.allclose(st.jump_ratio, torch.ones(3), atol=1e-4)
    assert torch.allclose(st.path_ratio, torch.ones(3), atol=1e-4)


def test_realness_accepts_held_out_digits_and_rejects_noise(test_images) -> None:
    # Raw pixels stand in for the judge's features here: the test is about the rule, not the feature map.
    images, _ = test_images
    realness = continuity.Realness.fit(images[:1000], k=5, quantile=0.95)
    held_out = realness.is_real(images[1000:]).to(torch.float32).mean().item()
    noise = realness.is_real(torch.rand(200, PIXELS, generator=torch.Generator().manual_seed(3)))
    assert held_out >= 0.85
    assert noise.to(torch.float32).mean().item() <= 0.05


def test_fixed_pairs_are_seeded_and_have_the_digit_relation_they_claim(test_images) -> None:
    _, labels = test_images
    a, b, same = continuity.fixed_pairs(labels, 50, seed=0)
    a2, b2, _ = continuity.fixed_pairs(labels, 50, seed=0)
    assert torch.equal(a, a2) and torch.equal(b, b2) and not torch.equal(a, continuity.fixed_pairs(labels, 50, 1)[0])
    assert len(a) == 100 and int(same.sum()) == 50
    assert (labels[a[~same]] != labels[b[~same]]).all() and (labels[a[same]] == labels[b[same]]).all()
    assert (a[same] != b[same]).all()


def test_the_own_grid_covers_the_codes_and_finds_empty_areas() -> None:
    gen = torch.Generator().manual_seed(4)
    spread = torch.rand(20_000, 2, generator=gen) * 10 - 3
    grid, ex, ey = continuity.own_grid(spread, 10)
    lo, hi = torch.quantile(spread, 0.01, dim=0), torch.quantile(spread, 0.99, dim=0)
    assert grid.shape == (100, 2) and ex[0] == pytest.approx(lo[0].item()) and ey[-1] == pytest.approx(hi[1].item())
    assert grid[0, 1] > grid[-1, 1] and grid[0, 0] < grid[9, 0]    # rows top-down, columns left to right
    assert continuity.empty_cells(spread, ex, ey).sum() == 0
    # Two far clusters: most of the box between and around them holds no code.
    clusters = torch.cat([torch.randn(5000, 2, generator=gen) * 0.1, torch.randn(5000, 2, generator=gen) * 0.1 + 5])
    _, cx, cy = continuity.own_grid(clusters, 10)
    empty = continuity.empty_cells(clusters, cx, cy)
    assert empty.to(torch.float32).mean() > 0.6


def test_path_and_grid_metrics_are_shares_and_ratios(test_images) -> None:
    images, labels = test_images
    realness = continuity.Realness.fit(images[:1000], k=5, quantile=0.95)
    codes = torch.randn(1000, 2, generator=torch.Generator().manual_seed(5))
    a, b, same = continuity.fixed_pairs(labels[:1000], 20, seed=0)
    ident = lambda x: x   # noqa: E731
    out = continuity.path_metrics(smooth_decoder(), ident, realness, codes[a], codes[b], same, 8)
    assert set(out) >= {"jump_ratio", "jump_ratio_median", "path_ratio_median", "real_share", "jump_ratio_same",
                        "real_share_different", "real_share_q90", "real_share_q99", "break_share", "break_share_p25",
                        "break_share_p75"}
    assert 0 <= out["break_share_p75"] <= out["break_share"] <= out["break_share_p25"] <= 1
    assert out["jump_ratio"] >= 1 and 0 <= out["real_share"] <= 1
    grid = continuity.grid_metrics(smooth_decoder(), ident, realness, codes, 8)
    assert 0 <= grid["own_real_share"] <= 1
    assert grid["empty_share"] == pytest.approx(grid["empty_real_share"] + grid["empty_unreal_share"])
    assert {"empty_excess_g10", "empty_excess_g40"} <= set(grid)


def test_empty_floor_explains_a_round_cloud_and_not_a_broken_one() -> None:
    # Known answers: a Gaussian cloud's empty cells are all floor (corner geometry); four clusters with wide gaps
    # between them leave most of their grid empty, far above the floor of a cloud of the same spread.
    gen = torch.Generator().manual_seed(5)
    cloud = torch.randn(10_000, 2, generator=gen)
    _, ex, ey = continuity.own_grid(cloud, 20)
    share = continuity.empty_cells(cloud, ex, ey).double().mean().item()
    floor = continuity.empty_floor(cloud, 20)
    assert 0.003 < floor < 0.06 and abs(share - floor) < 0.02
    centres = torch.tensor([[-3.0, -3.0], [-3.0, 3.0], [3.0, -3.0], [3.0, 3.0]])
    clusters = centres[torch.randint(4, (10_000,), generator=gen)] + 0.3 * torch.randn(10_000, 2, generator=gen)
    _, ex, ey = continuity.own_grid(clusters, 20)
    broken = continuity.empty_cells(clusters, ex, ey).double().mean().item()
    assert broken - continuity.empty_floor(clusters, 20) > 0.5


def test_empty_floor_of_a_collapsed_code_is_defined() -> None:
    # Every code the same point (the post's AE as written): the floor is still a number, not an error.
    floor = continuity.empty_floor(torch.full((500, 2), 0.5), 10)
    assert 0.0 <= floor <= 1.0
