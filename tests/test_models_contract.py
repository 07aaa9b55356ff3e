"""One contract over every registered model (and every likelihood a VAE can have): build, loss terms, save/load
round trip, posterior mean, figures drawn. Registering a model (or a likelihood) is what tests it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vaelab import models
from vaelab.core.config import FiguresConfig
from vaelab.core.errors import ConfigError
from vaelab.data.mnist import INPUT_DIM, Split, load_split
from vaelab.models import likelihoods
from vaelab.viz.images import save_figures
from vaelab.viz.model_figures import expected_kinds, model_figures

SMALL = {"latent_dim": 2, "hidden": [32, 16, 8]}


def specs() -> list[tuple[str, dict]]:
    """One entry per registered kind, and for a kind with a likelihood one per registered likelihood."""
    out = []
    for kind, cls in models.REGISTRY.items():
        fields = cls.Config.__dataclass_fields__
        if "likelihood" in fields:
            for name, lik in likelihoods.LIKELIHOODS.items():
                data = "dequantized" if getattr(lik, "open_interval", False) else "grey"
                out.append((f"{kind}-{name}", {"kind": kind, **SMALL, "likelihood": {"name": name}, "data": data}))
        else:
            out.append((kind, {"kind": kind, **SMALL}))
    return out


SPECS = specs()


@pytest.fixture(scope="module")
def split(mnist_root: Path) -> Split:
    test = load_split(mnist_root, "test")
    return Split(test.images[:300], test.labels[:300])


@pytest.fixture(params=[s for _, s in SPECS], ids=[i for i, _ in SPECS])
def model(request) -> models.LatentModel:
    return models.build(models.spec_from_dict(request.param, "models.m"), seed=0)


def test_same_seed_same_weights_and_checkpoint_bytes(model: models.LatentModel) -> None:
    spec = models.spec_from_dict({"kind": model.kind, **models.ModelSpec(model.kind, model.cfg).as_dict()}, "m")
    twin = models.build(spec, seed=0)
    assert models.checkpoint_bytes(twin) == models.checkpoint_bytes(model)


def test_loss_terms(model: models.LatentModel, split: Split) -> None:
    x = model.space.train_view(split.images[:64], torch.Generator().manual_seed(0))
    out = model.loss(x, split.labels[:64])
    assert set(out) >= {"loss", "recon", "kl"} and all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    beta = getattr(model.cfg, "beta", 1.0)
    assert math.isclose(out["loss"].item(), out["recon"].item() + beta * out["kl"].item(), rel_tol=1e-5, abs_tol=1e-4)
    assert out["kl"].item() >= 0 if model.has_prior else out["kl"].item() == 0
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_posterior_mean_and_images(model: models.LatentModel, split: Split) -> None:
    model.eval()
    with torch.no_grad():
        q = model.encode(split.images[:10], split.labels[:10])
        assert q.mean.shape == (10, model.cfg.latent_dim)
        assert torch.equal(q.mean, model.encode(split.images[:10], split.labels[:10]).mean)  # deterministic
        images = model.mean_image(q.mean, split.labels[:10])
    assert images.shape == (10, INPUT_DIM) and images.min() >= 0 and images.max() <= 1
    if model.latent_box is not None:
        low, high = model.latent_box
        assert q.mean.min() >= low and q.mean.max() <= high


def test_save_load_round_trip(model: models.LatentModel, split: Split, tmp_path: Path) -> None:
    model.eval()
    models.save(model, tmp_path / "model.pt")
    loaded = models.load(tmp_path / "model.pt")
    assert type(loaded) is type(model) and loaded.cfg == model.cfg
    with torch.no_grad():
        z = model.encode(split.images[:5], split.labels[:5]).mean
        assert torch.equal(z, loaded.encode(split.images[:5], split.labels[:5]).mean)
        assert torch.equal(model.decode(z, split.labels[:5]), loaded.decode(z, split.labels[:5]))
    assert (tmp_path / "model.pt").read_bytes() == models.checkpoint_bytes(loaded)


def test_figures_drawn(model: models.LatentModel, split: Split, tmp_path: Path) -> None:
    fig = FiguresConfig(grid_size=4, n_examples=10, samples=3, interp_pairs=2, interp_steps=3, dpi=30)
    figs = model_figures("m", model.eval(), split, fig, seed=0)
    assert sorted(figs) == sorted(expected_kinds(model))
    assert ("prior_samples" in figs) == model.has_prior
    assert len(save_figures(figs, tmp_path, fig.dpi)) == len(figs)


def test_unknown_kind_lists_the_registered_kinds() -> None:
    with pytest.raises(ConfigError, match=r"models\.x\.kind = 'gan'.*" + ".*".join(sorted(models.REGISTRY))):
        models.spec_from_dict({"kind": "gan"}, "models.x")


def test_unknown_likelihood_and_key_are_named() -> None:
    with pytest.raises(ConfigError, match=r"models\.x\.likelihood\.name = 'laplace'"):
        models.spec_from_dict({"kind": "vae", "likelihood": {"name": "laplace"}}, "models.x")
    with pytest.raises(ConfigError, match=r"models\.x\.depth: unknown key"):
        models.spec_from_dict({"kind": "vae", "depth": 3}, "models.x")


def test_every_metric_of_the_evaluation_is_finite(model: models.LatentModel, split: Split) -> None:
    """The evaluate stage's scorecard on every registered kind and likelihood (untrained, tiny settings): every
    number is finite, and each yardstick appears exactly where it applies."""
    from vaelab.core.config import EvaluateConfig, JudgeConfig, flatten
    from vaelab.measures import judge as judges
    from vaelab.measures import references
    from vaelab.studies import scorecard

    torch.set_num_threads(1)
    judge = judges.build(JudgeConfig(channels=4, hidden=16), seed=0).eval()
    tests = scorecard.test_sets(split, (split.images > 0.5).float(), seed=0)
    cfg = EvaluateConfig(iwae_samples=2, likelihood_images=20, binarized_iwae_samples=2, binarized_images=20,
                         quadrature_images=0, sample_images=100, knn_k=3)
    out = scorecard.score(model, judge, split, tests, references.of_images(judge, split.images, cfg), cfg,
                          seed=0)
    flat = flatten(out)
    assert flat and all(math.isfinite(v) for v in flat.values()), flat
    assert ("samples" in out) == model.has_prior
    assert ("continuity" in out) == (not model.conditional) and "sharpness" in out
    assert ("style" in out) == (model.conditional and model.has_prior)
    assert ("sample_midgrey" in out["sharpness"]) == model.has_prior
    assert ("grey8bit" in out) == (model.has_prior and not model.conditional and model.likelihood.density)
