"""The shared training loop: determinism, learning, labels in every batch, and the model API the later stages use."""

from __future__ import annotations

import torch

from vaelab import models
from vaelab.core.config import TrainConfig
from vaelab.data.mnist import Split, load_split
from vaelab.training.loop import fit

SMALL = {"hidden": [64, 32, 16]}


def train_small(mnist_root, kind="vae", likelihood="bernoulli", seed=0, epochs=2):
    train, test = load_split(mnist_root, "train", 512), load_split(mnist_root, "test")
    spec = {"kind": kind, **SMALL, **({"likelihood": {"name": likelihood}} if kind != "ae" else {})}
    model = models.build(models.spec_from_dict(spec, "m"), seed=seed)
    history = fit(model, train, Split(test.images[:256], test.labels[:256]),
                  TrainConfig(epochs=epochs, batch_size=64, lr=1e-3), seed=seed)
    return model, history


def test_same_seed_gives_identical_numbers_and_weights(mnist_root):
    (a, hist_a), (b, hist_b) = train_small(mnist_root), train_small(mnist_root)
    assert hist_a == hist_b
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert models.checkpoint_bytes(a) == models.checkpoint_bytes(b)
    _, hist_c = train_small(mnist_root, seed=1)
    assert hist_c != hist_a


def test_loss_decreases_and_terms_add_up(mnist_root):
    _, history = train_small(mnist_root, epochs=3)
    assert history[-1].test["loss"] < history[0].test["loss"]
    last = history[-1].test
    assert abs(last["loss"] - (last["recon"] + last["kl"])) < 1e-3 * abs(last["loss"])
    assert last["mse"] > 0


def test_saved_model_loads_with_the_public_api(mnist_root, tmp_path):
    x = load_split(mnist_root, "test").images[:16]
    for kind, likelihood in (("ae", None), ("vae", "gaussian"), ("vae", "bernoulli")):
        model, _ = train_small(mnist_root, kind, likelihood, epochs=1)
        models.save(model, tmp_path / kind / "model.pt")
        loaded = models.load(tmp_path / kind)
        assert not loaded.training
        z = loaded.encode(x).mean
        assert z.shape == (16, 2)
        if loaded.latent_box is not None:
            assert z.min() >= 0 and z.max() <= 1
        images = loaded.mean_image(z)
        assert images.shape == (16, 784) and images.min() >= 0 and images.max() <= 1
        assert torch.equal(images, model.mean_image(z))  # the same z: the same shapes and threads
