"""The named test subsets: seeded, reproducible, not the first N, and named by what they hold."""

import pytest
import torch

from vaelab.data.image_sets import set_id, subset


def test_a_subset_is_seeded_distinct_sorted_and_not_the_first_n():
    a, b = subset(10_000, 200, seed=0), subset(10_000, 200, seed=0)
    assert torch.equal(a, b)
    assert len(a.unique()) == 200 and torch.equal(a, a.sort().values)
    assert not torch.equal(a, torch.arange(200))
    assert not torch.equal(a, subset(10_000, 200, seed=1))


def test_all_images_when_n_is_none_or_covers_the_set():
    assert torch.equal(subset(50, None, 3), torch.arange(50))
    assert torch.equal(subset(50, 80, 3), torch.arange(50))
    assert set_id("likelihood", None, 3, 10_000) == "likelihood-all10000"
    assert set_id("likelihood", 2000, 3, 10_000) == "likelihood-2000of10000-seed3"


def test_an_empty_subset_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        subset(10, 0, 0)
