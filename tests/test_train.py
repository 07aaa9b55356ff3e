"""The shared training loop: determinism, and the model API the later stages use."""

from __future__ import annotations

import torch

from vaelab import models
from vaelab.config import ModelConfig, TrainConfig
from vaelab.data import load_split
from vaelab.train import fit

SMALL = dict(hidden=[64, 32, 16])


def train_small(mnist_root, kind="vae", likelihood="bernoulli", seed=0, epochs=2):
    train, test = load_split(mnist_root, "train", 512), load_split(mnist_root, "test")
    model = models.build(ModelConfig(kind=kind, likelihood=likelihood, **SMALL), seed=seed)
    history = fit(model, train.images, test.images[:256], TrainConfig(epochs=epochs, batch_size=64, lr=1e-3),
                  seed=seed)
    return model, history


def test_same_seed_gives_identical_numbers_and_weights(mnist_root):
    (a, hist_a), (b, hist_b) = train_small(mnist_root), train_small(mnist_root)
    assert hist_a == hist_b
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    _, hist_c = train_small(mnist_root, seed=1)
    assert hist_c != hist_a


def test_loss_decreases_and_terms_add_up(mnist_root):
    _, history = train_small(mnist_root, epochs=3)
    assert history[-1].test["loss"] < history[0].test["loss"]
    last = history[-1].test
    assert abs(last["loss"] - (last["recon"] + last["kl"])) < 1e-3 * last["loss"]


def test_saved_model_loads_with_the_public_api(mnist_root, tmp_path):
    x = load_split(mnist_root, "test").images[:16]
    for kind, likelihood in (("ae", "gaussian"), ("vae", "gaussian"), ("vae", "bernoulli")):
        model, _ = train_small(mnist_root, kind, likelihood, epochs=1)
        models.save(model, tmp_path / kind / "model.pt")
        loaded = models.load(tmp_path / kind)
        assert not loaded.training
        code = loaded.encode(x)
        if kind == "ae":
            assert code.shape == (16, 2) and code.min() >= 0 and code.max() <= 1
            z = code
        else:
            mu, logvar = code
            assert mu.shape == logvar.shape == (16, 2)
            z = mu
        images = loaded.decode(z)
        assert images.shape == (16, 784) and images.min() >= 0 and images.max() <= 1
        assert torch.equal(images, model.decode(z))
