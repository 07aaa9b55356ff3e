"""The figures of a model: each plot function on a small model trained a few steps, saved as a real PNG;
the figures stage on a real MLflow store, including a latent size of 3 (no manifold, projected plots)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from vaelab import models, tracking
from vaelab.core.config import FiguresConfig, MlflowConfig, Params, TrainConfig
from vaelab.core.files import md5_of_file
from vaelab.data.mnist import Split, load_split
from vaelab.measures import metrics
from vaelab.training.loop import fit
from vaelab.viz import charts
from vaelab.viz import images as plots
from vaelab.viz import model_figures as figures

REPO = Path(__file__).resolve().parents[1]

FIG = FiguresConfig(grid_size=6, n_examples=20, samples=4, interp_pairs=3, interp_steps=5, dpi=50)


@pytest.fixture(scope="module")
def test_split(mnist_root: Path) -> Split:
    full = load_split(mnist_root, "test")
    return Split(full.images[:2000], full.labels[:2000])


@pytest.fixture(scope="module", params=[{"kind": "ae"}, {"kind": "vae", "likelihood": {"name": "bernoulli"}}],
                ids=["ae", "vae"])
def trained(request, mnist_root: Path, test_split: Split) -> models.LatentModel:
    """A real model trained for a few steps (8 batches of 64) on the first 500 training images."""
    model = models.build(models.spec_from_dict(request.param, "m"), seed=0)
    fit(model, load_split(mnist_root, "train", 500), Split(test_split.images[:200], test_split.labels[:200]),
        TrainConfig(epochs=1, batch_size=64), seed=0)
    return model


def read_png(path: Path) -> np.ndarray:
    assert path.is_file() and path.stat().st_size > 0, path
    return matplotlib.image.imread(path)


def assert_drawn(fig, path: Path, dpi: int) -> None:
    """Saved PNG has the figure's size in pixels and is not blank."""
    plots.save_figures({path.stem: fig}, path.parent, dpi)
    pixels = read_png(path)
    width, height = (fig.get_size_inches() * dpi).round().astype(int)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].mean(axis=-1).var() > 1e-3, f"{path} looks blank"


def test_every_model_figure_is_a_nonblank_png(trained, test_split, tmp_path):
    figs = figures.model_figures("m", trained, test_split, FIG, seed=0)
    assert sorted(figs) == sorted(figures.expected_kinds(trained))
    assert ("prior_samples" in figs) == trained.has_prior
    for kind, fig in figs.items():
        assert_drawn(fig, tmp_path / f"{kind}.png", FIG.dpi)


def test_manifold_tiles_are_the_decoded_grid(trained, tmp_path):
    grid = trained.latent_grid(FIG.grid_size)
    with torch.no_grad():
        decoded = trained.mean_image(grid)
    fig = plots.manifold(decoded, trained.latent_axis(FIG.grid_size), "m")
    canvas = fig.axes[0].images[0].get_array()
    assert canvas.shape == (FIG.grid_size * 28, FIG.grid_size * 28)  # grid_size^2 tiles, edge to edge
    tiles = canvas.reshape(FIG.grid_size, 28, FIG.grid_size, 28).transpose(0, 2, 1, 3).reshape(-1, 784)
    np.testing.assert_allclose(tiles, decoded.numpy(), atol=1e-6)
    assert_drawn(fig, tmp_path / "manifold.png", FIG.dpi)


def test_latent_scatter_has_discrete_colourbar_and_natural_axes(trained, test_split):
    codes = metrics.codes(trained, test_split.images)
    limits = figures.latent_limits(trained, codes, FIG.vae_range)
    assert limits == ((0.0, 1.0) if trained.latent_box is not None else (-4.0, 4.0))
    fig = charts.latent_scatter(codes, test_split.labels, limits, "m")
    ax, bar = fig.axes
    assert ax.get_xlim() == limits and ax.get_ylim() == limits
    assert [t.get_text() for t in bar.get_yticklabels()] == [str(d) for d in range(10)]
    panels = charts.latent_by_digit(codes, test_split.labels, limits, "m").axes
    assert len(panels) == 10 and all(p.get_xlim() == limits and p.get_ylim() == limits for p in panels)
    assert [p.get_title().split()[1] for p in panels] == [str(d) for d in range(10)]


def test_data_free_latent_range_covers_the_codes():
    codes = torch.tensor([[0.5, -7.0], [2.0, 1.0], [0.0, 0.0]])
    vae = models.build(models.spec_from_dict({"kind": "vae"}, "m"))
    low, high = figures.latent_limits(vae, codes, None)
    assert low == -high and high >= 7.0


def test_reconstructions_show_every_digit_beside_its_input(trained, test_split, tmp_path):
    idx = figures.by_digit(test_split.labels, 20)
    assert sorted(test_split.labels[idx].tolist()) == sorted(list(range(10)) * 2)
    fig = plots.reconstructions(test_split.images[idx], test_split.images[idx], "same scale")
    image = fig.axes[0].images[0]
    assert image.get_clim() == (0.0, 1.0)  # inputs and outputs share one grey scale
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["input", "recon."] * 2
    assert_drawn(fig, tmp_path / "reconstructions.png", FIG.dpi)


def test_data_grid_and_loss_curves(mnist_root, tmp_path):
    train = load_split(mnist_root, "train", 25)
    fig = plots.data_grid(train.images, train.labels, cols=5)
    assert [t.get_text() for t in fig.axes[0].texts] == [str(v) for v in train.labels.tolist()]
    assert_drawn(fig, tmp_path / "data.png", 60)
    curves = charts.loss_curves({"AE": ([1, 2, 3], [40.0, 35.0, 33.0]), "VAE-BCE": ([1, 2, 3], [160.0, 150.0, 145.0])},
                                "Test loss per epoch")
    assert [line.get_label() for line in curves.axes[0].get_lines()] == ["AE", "VAE-BCE"]
    assert list(curves.axes[0].get_xticks()) == [1, 2, 3]  # whole epochs only
    assert_drawn(curves, tmp_path / "test_loss.png", 60)


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A project root with a real MLflow sqlite store and the MNIST data folder."""
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    return root


@pytest.mark.slow
def test_figures_stage_with_latent_size_3(store, mnist_root, caplog, monkeypatch):
    """No manifold (logged), projected 2-D plots, PNGs published and logged to exactly the checkpoint's run."""
    monkeypatch.syspath_prepend(str(REPO / "stages"))
    sys.modules.pop("figures", None)
    import figures as figures_stage

    (store / "data").symlink_to(mnist_root)
    entry = {"kind": "vae", "latent_dim": 3, "hidden": [32, 16, 8]}
    model = models.build(models.spec_from_dict(entry, "m"))
    checkpoint = store / "models" / "vae3" / "seed0" / "model.pt"
    models.save(model, checkpoint)
    params = Params(models={"vae3": entry}, seeds=[0], mlflow=MlflowConfig("t"), figures=FIG)
    experiment_id = tracking.setup("t")
    other = MlflowClient().create_run(experiment_id, tags={"model": "vae3", "vaelab.checkpoint_md5": "0" * 32})
    run = MlflowClient().create_run(experiment_id, tags={"model": "vae3", "vaelab.checkpoint_md5": md5_of_file(checkpoint)})
    for r in (other, run):
        MlflowClient().set_terminated(r.info.run_id, "FINISHED")
    run_id = run.info.run_id
    stale = store / "reports" / "figures" / "vae3" / "manifold.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left from a 2-D latent")
    with caplog.at_level(logging.INFO):
        figures_stage.draw(params, "vae3", root=store)
    written = sorted((store / "reports" / "figures" / "vae3").iterdir())
    assert "manifold grid skipped" in caplog.text
    names = sorted(p.name for p in written)
    assert names == sorted(f"{k}.png" for k in figures.expected_kinds(model)) and "manifold.png" not in names
    assert not stale.exists()
    for path in written:
        read_png(path)
    logged = sorted(Path(a.path).name for a in MlflowClient().list_artifacts(run_id, "figures"))
    assert logged == names
    assert MlflowClient().list_artifacts(other.info.run_id, "figures") == []  # never someone else's run
    assert not list(store.glob(".figures-*"))  # staging folder removed
    figs = figures.model_figures("vae3", models.load(checkpoint), load_split(mnist_root, "test", None),
                                 FIG, seed=0)
    assert "projection" in figs["latent"].axes[0].get_title()
    assert "first two coordinates" in figs["latent_by_digit"].axes[0].get_ylabel()
