"""The conditional VAE: the label really reaches both networks, samples are drawn and judged with the label that
was asked for, the label-marginal likelihood bound, its two figures, and a short training through the loop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from vaelab import models
from vaelab.core.config import EvaluateConfig, FiguresConfig, JudgeConfig, TrainConfig
from vaelab.data.mnist import IMAGE_SIDE, INPUT_DIM, NUM_CLASSES, Split, load_split
from vaelab.measures import judge as judges
from vaelab.measures import references
from vaelab.studies import scorecard
from vaelab.training import loop
from vaelab.viz import conditional_figures
from vaelab.viz.model_figures import expected_kinds, model_figures

SMALL = {"kind": "cvae", "latent_dim": 2, "hidden": [32, 16, 8], "likelihood": {"name": "bernoulli"}}
LABELS = torch.arange(NUM_CLASSES)


def build(**settings) -> models.LatentModel:
    return models.build(models.spec_from_dict({**SMALL, **settings}, "models.cvae"), seed=0).eval()


@pytest.fixture(scope="module")
def test_split(mnist_root: Path) -> Split:
    test = load_split(mnist_root, "test")
    return Split(test.images[:200], test.labels[:200])


def blind_to_labels(model: models.LatentModel) -> None:
    """Zero the weights from the one-hot inputs of both networks' first layers: the model no longer sees y."""
    with torch.no_grad():
        model.encoder[0].weight[:, INPUT_DIM:] = 0
        model.decoder[0].weight[:, model.cfg.latent_dim:] = 0


def test_the_label_reaches_the_decoder_and_the_encoder(test_split: Split) -> None:
    model = build()
    assert model.conditional and model.has_prior
    z = torch.tensor([[0.3, -1.2]]).expand(NUM_CLASSES, -1)
    x = test_split.images[:1].expand(NUM_CLASSES, -1)
    with torch.no_grad():
        decoded, codes = model.mean_image(z, LABELS), model.encode(x, LABELS).mean
        assert torch.cdist(decoded, decoded).add(torch.eye(NUM_CLASSES)).min() > 1e-4  # ten different images
        assert torch.cdist(codes, codes).add(torch.eye(NUM_CLASSES)).min() > 1e-6      # ten different codes
        blind_to_labels(model)  # the one-hot enters through exactly these weights
        decoded, codes = model.mean_image(z, LABELS), model.encode(x, LABELS).mean
    assert torch.allclose(decoded, decoded[:1].expand_as(decoded))
    assert torch.allclose(codes, codes[:1].expand_as(codes))


@pytest.mark.parametrize("labels,match", [
    (None, "needs the digit labels"),
    (torch.zeros(3), "int64 of shape \\[3\\]"),                            # float labels
    (torch.zeros(2, dtype=torch.int64), "int64 of shape \\[3\\].*\\[2\\]"),  # one label short
])
def test_bad_labels_are_a_clear_error(labels, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build().decode(torch.zeros(3, 2), labels)


def drawing_model() -> models.LatentModel:
    """A CVAE whose decoder ignores z and paints block k of the pixels for label k (weights set by hand)."""
    model = build(hidden=[16])
    block = INPUT_DIM // NUM_CLASSES
    first, last = model.decoder[0], model.decoder[2]
    with torch.no_grad():
        for p in (first.weight, first.bias, last.weight):
            p.zero_()
        last.bias.fill_(-10.0)
        for k in range(NUM_CLASSES):
            # weights are [seed, in, out] (vaelab.models.layers)
            first.weight[0, model.cfg.latent_dim + k, k] = 1.0            # hidden unit k <- one-hot k
            last.weight[0, k, k * block:(k + 1) * block] = 20.0            # block k <- hidden unit k
    return model


def block_judge(shift: int) -> nn.Module:
    """A linear 'classifier' calling an image class (k - shift) mod 10 when block k is bright."""
    judge = nn.Linear(INPUT_DIM, NUM_CLASSES, bias=False)
    block = INPUT_DIM // NUM_CLASSES
    with torch.no_grad():
        judge.weight.zero_()
        for k in range(NUM_CLASSES):
            judge.weight[(k - shift) % NUM_CLASSES, k * block:(k + 1) * block] = 1.0
    return judge


def test_conditional_accuracy_judges_the_requested_label() -> None:
    model = drawing_model()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert scorecard.conditional_accuracy(model, block_judge(0), 50, gen()) == 1.0
    assert scorecard.conditional_accuracy(model, block_judge(1), 50, gen()) == 0.0
    assert scorecard.conditional_accuracy(build(), block_judge(0), 50, gen()) < 0.5  # an untrained model


def test_label_marginal_bound(test_split: Split) -> None:
    model = build()
    x, y = test_split.images[:40], test_split.labels[:40]
    marginal, per_label = scorecard.label_marginal_nll(model, x, 16, torch.Generator().manual_seed(0))
    assert marginal.shape == (40,) and per_label.shape == (40, NUM_CLASSES) and torch.isfinite(per_label).all()
    given_y = per_label[torch.arange(40), y]
    # −log p(x) ≤ −log p(x|y_true) + ln 10, and never below the best label's −log p(x|y)
    assert (marginal <= given_y + math.log(NUM_CLASSES) + 1e-4).all()
    assert (marginal >= per_label.min(1).values - 1e-4).all()
    again, _ = scorecard.label_marginal_nll(model, x, 16, torch.Generator().manual_seed(0))
    assert torch.equal(marginal, again)  # seeded, and the same call: the same matrix shapes and threads
    # A model blind to the label has p(x) = p(x|y): the ten terms average to one, no ln 10 is gained.
    blind_to_labels(model)
    marginal, per_label = scorecard.label_marginal_nll(model, x, 64, torch.Generator().manual_seed(0))
    assert (marginal - per_label.mean(1)).abs().max() < 0.1 * math.log(NUM_CLASSES)


def test_conditional_figures(test_split: Split) -> None:
    model = build()
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    rows = conditional_figures.class_sample_images(model, z)
    assert rows.shape == (NUM_CLASSES, 4, INPUT_DIM)
    with torch.no_grad():
        for k in (0, 7):  # row k, column j: z_j decoded with label k (the same z down a column)
            assert torch.allclose(rows[k], model.mean_image(z, torch.full((4,), k)))
    x, y = test_split.images[:5], test_split.labels[:5]
    styles = conditional_figures.style_transfer_images(model, x, y)
    assert styles.shape == (5, NUM_CLASSES, INPUT_DIM)
    with torch.no_grad():  # column y_i of row i is image i's own reconstruction
        assert torch.allclose(styles[torch.arange(5), y], model.mean_image(model.encode(x, y).mean, y))

    fig = FiguresConfig(grid_size=4, n_examples=10, samples=3, interp_pairs=2, interp_steps=3, dpi=30)
    figs = model_figures("cvae", model, test_split, fig, seed=0)
    assert {"class_samples", "style_transfer"} <= set(figs) == set(expected_kinds(model))
    assert "class_samples" not in expected_kinds(models.build(models.spec_from_dict(
        {**SMALL, "kind": "vae"}, "m")))
    step = IMAGE_SIDE + conditional_figures.PAD
    for kind, cols in (("class_samples", 3), ("style_transfer", 1 + NUM_CLASSES)):
        ax = figs[kind].axes[0]
        assert ax.images[0].get_array().shape == (NUM_CLASSES * step - 2, cols * step - 2)
        assert [t.get_text() for t in (ax.get_yticklabels() if kind == "class_samples" else ax.get_xticklabels()[1:])] \
            == [str(d) for d in range(NUM_CLASSES)]


def test_tiny_training_through_the_loop_with_labels(mnist_root: Path, test_split: Split) -> None:
    torch.set_num_threads(1)
    train = load_split(mnist_root, "train", 500)
    model = models.build(models.spec_from_dict({"kind": "cvae"}, "models.cvae"), seed=0)  # default size
    before = loop.evaluate_loss(model, test_split.images, test_split.labels, 128)
    history = loop.fit(model, tuple(train), tuple(test_split), TrainConfig(epochs=1, batch_size=128, lr=1e-3), seed=0)
    assert len(history) == 1 and history[0].test["loss"] < before["loss"] - 20  # it learned something (544 -> 503)
    assert not model.training


def test_score_of_a_conditional_model(mnist_root: Path, test_split: Split) -> None:
    train = load_split(mnist_root, "train", 300)
    model = build()
    judge = judges.build(JudgeConfig(channels=4, hidden=16), seed=0).eval()
    tests = scorecard.test_sets(test_split, (test_split.images > 0.5).float(), seed=0)
    cfg = EvaluateConfig(iwae_samples=4, knn_k=3, likelihood_images=200, sample_images=500)
    out = scorecard.score(model, judge, train, tests, references.of_images(judge, test_split.images, cfg), cfg,
                          seed=0)
    assert set(out["iwae"]) == {"nll_given_y", "nll_marginal", "nll_given_y_se", "nll_marginal_se"} and "grid" not in out
    assert out["iwae"]["nll_marginal"] <= out["iwae"]["nll_given_y"] + math.log(NUM_CLASSES)
    assert set(out["conditional"]) == {"accuracy", "bayes_accuracy"}
    assert set(out["samples"]) == {"fid", "fid_sets_mean", "fid_sets_std", "kid", "kid_std", "precision", "density",
                                   "coverage"} and "samples_reference" not in out   # measured once: references
    assert all(0 <= v <= 1 for v in out["conditional"].values())
