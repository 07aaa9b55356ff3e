"""Seeds trained side by side as one stacked model: each seed keeps its own initial weights, data order, noise
and gradient, a stacked run is reproducible, and its seeds match the same seeds trained alone (to the last
bits that BLAS may compute differently for another matrix shape: never compared exactly)."""

from __future__ import annotations

import pytest
import torch

from vaelab import models
from vaelab.core.config import TrainConfig
from vaelab.data.mnist import Split, load_split
from vaelab.training.loop import fit, fit_stacked

SEEDS = [3, 4, 5]
TINY = {"hidden": [32, 16, 8]}
SPECS = {
    "ae": {"kind": "ae", **TINY},
    "vae_optimal_sigma": {"kind": "vae", **TINY, "likelihood": {"name": "gaussian_optimal"}, "data": "dequantized"},
    "vae_learned_sigma": {"kind": "vae", **TINY, "likelihood": {"name": "gaussian_learned"}, "data": "dequantized"},
    "vae_binarized": {"kind": "vae", **TINY, "data": "binarized"},
    "cvae": {"kind": "cvae", **TINY},
}
CFG = TrainConfig(epochs=1, batch_size=64, lr=1e-3)


@pytest.fixture(scope="module")
def data(mnist_root) -> tuple[Split, Split]:
    test = load_split(mnist_root, "test", 128)
    return load_split(mnist_root, "train", 256), Split(test.images, test.labels)


def spec(name: str) -> models.ModelSpec:
    return models.spec_from_dict(SPECS[name], name)


def train_stacked(name: str, data) -> tuple[list[models.LatentModel], list]:
    stacked = models.stack([models.build(spec(name), seed=s) for s in SEEDS])
    histories = fit_stacked(stacked, *data, CFG, seeds=SEEDS, view=stacked.space.train_view)
    return models.unstack(stacked), histories


def test_stack_and_unstack_give_back_each_seeds_weights() -> None:
    singles = [models.build(spec("vae_learned_sigma"), seed=s) for s in SEEDS]
    back = models.unstack(models.stack(singles))
    for a, b in zip(singles, back):
        assert models.checkpoint_bytes(a) == models.checkpoint_bytes(b)
    assert models.checkpoint_bytes(singles[0]) != models.checkpoint_bytes(singles[1])


@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_stacked_seed_trains_as_it_would_alone(name: str, data) -> None:
    trained, histories = train_stacked(name, data)
    for seed, model, history in zip(SEEDS, trained, histories):
        alone = models.build(spec(name), seed=seed)
        alone_history = fit(alone, *data, CFG, seed=seed, view=alone.space.train_view)
        # Same arithmetic per seed; only the matrix products' shapes differ ([S, B, in] against [B, in]). The
        # function is compared, not every weight: a weight whose gradient is (nearly) zero, like the bias before
        # the AE's batch-norm, takes Adam steps of ±lr on round-off alone (Adam divides by the gradient's scale).
        x, y = data[1].images, data[1].labels
        with torch.no_grad():
            torch.testing.assert_close(model.mean_image(model.encode(x, y).mean, y),
                                       alone.mean_image(alone.encode(x, y).mean, y), rtol=0, atol=1e-4)
        assert history[-1].test == pytest.approx(alone_history[-1].test, rel=1e-4)
    assert histories[0][-1].train != histories[1][-1].train  # seeds differ: own weights, order and noise


def test_a_stacked_run_is_reproducible(data) -> None:
    (a, hist_a), (b, hist_b) = train_stacked("vae_binarized", data), train_stacked("vae_binarized", data)
    assert hist_a == hist_b  # the same shapes and threads: bit for bit
    assert [models.checkpoint_bytes(m) for m in a] == [models.checkpoint_bytes(m) for m in b]


def test_a_network_with_another_number_of_seeds_is_refused(data) -> None:
    model = models.build(spec("ae"), seed=0)
    with pytest.raises(ValueError, match="holds 1 seeds, but 3 were given"):
        fit_stacked(model, *data, CFG, seeds=SEEDS)
