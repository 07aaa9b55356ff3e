"""Quadrant completion (Sohn et al. 2015; stage `quadrants`): the masks, the importance-sampled conditional NLL,
completions that keep the given pixels, determinism, bad params, and the stage end to end on tiny params."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, run
from helpers.workdir import make_workdir

from vaelab.core.config import load_params
from vaelab.core.errors import ConfigError
from vaelab.data.mnist import IMAGE_SIDE, load_split
from vaelab.studies import quadrants as quad

TINY = {"hidden": [32], "latent_dim": 4, "baseline_epochs": 1, "epochs": 1, "batch_size": 64,
        "test_images": 50, "figure_examples": 4, "figure_samples": 2}


@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread, as the stage's workers run (vaelab.pipeline.stage.parallel_map): on these tiny networks a second
    OpenMP thread only waits, and on a busy machine it costs seconds per test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(mnist_root: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    train, test = load_split(mnist_root, "train", 600), load_split(mnist_root, "test", 200)
    return train.images, test.images, test.labels


def pixel(row: int, col: int) -> int:
    return row * IMAGE_SIDE + col


@pytest.mark.parametrize("given", [1, 2, 3])
def test_masks_partition_the_image_into_given_and_missing_quadrants(given: int) -> None:
    mask = quad.given_mask(given)
    ids = quad.quadrant_of_pixels()
    assert [int((ids == q).sum()) for q in range(4)] == [196] * 4  # four 14 x 14 quadrants
    assert int(mask.sum()) == 196 * given
    for q, name in enumerate(quad.QUADRANTS):  # each quadrant is wholly given or wholly missing
        expected = name in quad.GIVEN_QUADRANTS[given]
        assert bool(mask[ids == q].all()) == expected and bool(mask[ids == q].any()) == expected, name
    corners = {"top-left": pixel(0, 0), "top-right": pixel(0, 27), "bottom-left": pixel(27, 0),
               "bottom-right": pixel(27, 27)}
    assert {n for n, p in corners.items() if mask[p]} == set(quad.GIVEN_QUADRANTS[given])
    assert not mask[pixel(27, 27)]  # Pyro's protocol: the bottom-right quadrant is always to be predicted
    x = torch.rand(5, 784)
    given_px, missing_px = quad.split(x, mask)
    assert given_px.shape == (5, 196 * given) and missing_px.shape == (5, 784 - 196 * given)
    assert torch.equal(quad.complete(mask, given_px, missing_px), x)


def test_settings_are_nested_and_bad_settings_raise() -> None:
    assert bool((quad.given_mask(1) <= quad.given_mask(2)).all()) and bool((quad.given_mask(2) <= quad.given_mask(3)).all())
    for bad in (0, 4):
        with pytest.raises(ValueError, match="expected 1, 2 or 3"):
            quad.given_mask(bad)


def tiny_models(given: int, train: torch.Tensor | None = None) -> tuple[quad.Baseline, quad.QuadrantCVAE]:
    """A small baseline and CVAE, untrained or (with ``train``) one epoch each, the baseline first."""
    torch.manual_seed(0)
    baseline = quad.Baseline(given, [32])
    if train is not None:
        quad.fit(baseline, list(baseline.parameters()), *quad.split(train, baseline.mask), 1, 64, 1e-3, 0)
    cvae = quad.QuadrantCVAE(baseline, [32], 4)
    if train is not None:
        quad.fit(cvae, cvae.trainable(), *quad.split(train, baseline.mask), 1, 64, 1e-3, 1)
    return baseline, cvae.eval()


def test_importance_sampled_nll_is_exact_when_q_is_the_prior_and_z_is_ignored(data) -> None:
    _, test, _ = data
    baseline, cvae = tiny_models(1)
    with torch.no_grad():  # q = p = the same constant Gaussian, and the generation network blind to z
        for net in (cvae.prior_net, cvae.recognition_net):
            net[-1].weight.zero_()
            net[-1].bias.copy_(torch.linspace(-0.5, 0.5, 8))
        cvae.generation_in.weight[:, cvae.given_dim:] = 0
    xg, xm = quad.split(test[:20], cvae.mask)
    exact = -quad.missing_log_prob(cvae.logits(xg, torch.zeros(20, 4)), xm)
    for samples in (1, 100):
        scores = quad.conditional_nll(cvae, xg, xm, samples, torch.Generator().manual_seed(samples))
        torch.testing.assert_close(scores.nll, exact, rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(scores.neg_elbo, exact, rtol=1e-5, atol=1e-3)


def test_importance_sampled_nll_is_finite_and_tightens_with_more_samples(data) -> None:
    train, test, _ = data
    _, cvae = tiny_models(2, train)
    xg, xm = quad.split(test, cvae.mask)
    means = {}
    for samples in (1, 10, 100, 1000):
        scores = quad.conditional_nll(cvae, xg, xm, samples, torch.Generator().manual_seed(samples))
        assert torch.isfinite(scores.nll).all() and scores.nll.shape == (len(test),)
        assert bool((scores.neg_elbo >= scores.nll - 1e-4).all())  # Jensen, image by image
        means[samples] = scores.nll.mean().item()
    # In expectation the estimate of -log p(missing | given) decreases with S and settles (Burda et al. 2016).
    assert means[1] > means[10] > means[100] >= means[1000] - 0.05, means
    assert means[100] - means[1000] < 0.1 * (means[1] - means[100]), means
    # The chunking of images is only memory: the same normals give the same numbers, up to round-off (other
    # rows, other matrix shapes).
    a = quad.conditional_nll(cvae, xg, xm, 100, torch.Generator().manual_seed(3), rows=700)
    b = quad.conditional_nll(cvae, xg, xm, 100, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.nll, b.nll)


@pytest.mark.parametrize("given", [1, 3])
def test_completions_keep_the_given_pixels(data, given: int) -> None:
    _, test, _ = data
    baseline, cvae = tiny_models(given)
    x = test[:6]
    tiles = quad.figure_tiles(baseline, cvae, x, 3, torch.Generator().manual_seed(0))
    mask = cvae.mask
    assert tiles.shape == (6, 6, 784)
    assert torch.equal(tiles[:, 1], x)                                         # the truth
    assert bool((tiles[:, 0, ~mask] == quad.MISSING_GREY).all())               # the input, missing pixels grey
    for col in range(2, 6):                                                    # baseline and CVAE samples
        assert torch.equal(tiles[:, col][:, mask], x[:, mask]), col
    assert tiles.min() >= 0 and tiles.max() <= 1
    samples = cvae.sample(quad.split(x, mask)[0], 3, torch.Generator().manual_seed(1))
    assert samples.shape == (6, 3, 784 - int(mask.sum()))
    assert (samples[:, 0] - samples[:, 1]).abs().max() > 1e-6  # z ~ p(z | given) differs between samples


def test_a_setting_is_deterministic(data) -> None:
    train, test, labels = data
    cfg = quad.parse_config(TINY)
    a = quad.run_setting(cfg, 3, train, test[:50], labels[:50], seed=1)
    b = quad.run_setting(cfg, 3, train, test[:50], labels[:50], seed=1)
    assert a.metrics == b.metrics and a.cvae_history == b.cvae_history and torch.equal(a.tiles, b.tiles)
    assert all(math.isfinite(v) for v in a.metrics.values())
    assert quad.run_setting(cfg, 3, train, test[:50], labels[:50], seed=2).metrics != a.metrics


@pytest.mark.parametrize("raw,fragments", [
    ({"samples": 10}, ["quadrants.samples = 10", ">= 100"]),
    ({"given": [1, 4]}, ["quadrants.given = [1, 4]", "each 1, 2 or 3"]),
    ({"given": [2, 2]}, ["quadrants.given = [2, 2]", "distinct"]),
    ({"epochs": 0}, ["quadrants.epochs = 0", ">= 1"]),
    ({"hidden": [500, 0]}, ["quadrants.hidden = [500, 0]", ">= 1"]),
    ({"lr": -1.0}, ["quadrants.lr = -1.0", "> 0"]),
    ({"test_images": 20_000}, ["quadrants.test_images = 20000", "between 2 and 10000"]),
    ({"batch_size": "big"}, ["quadrants.batch_size = 'big'", "expected int"]),
    ({"epoch": 3}, ["quadrants.epoch: unknown key", "epochs"]),
])
def test_bad_params_name_the_key_the_value_and_the_expectation(raw: dict, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        quad.parse_config(raw)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_bad_params_stop_the_stage_before_any_work(tmp_path: Path, mnist_root: Path) -> None:
    """The stage program as DVC runs it: one line naming the key, a non-zero exit, nothing written."""
    workdir = make_workdir(tmp_path / "w", mnist_root, quadrants__samples=50)
    before = sorted(p.name for p in workdir.iterdir())
    proc = run([sys.executable, str(REPO / "stages" / "quadrants.py")], workdir, check=False,
               PYTHONPATH=str(REPO / "src"))
    assert proc.returncode == 1 and "quadrants.samples = 50: expected >= 100" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in workdir.iterdir()) == before  # no mlflow.db, no outputs


@pytest.mark.slow  # the shared tiny `dvc repro`
def test_the_stage_in_the_tiny_pipeline_scores_every_setting_and_records_its_run(tiny_pipeline: Path) -> None:
    """The quadrants stage as `dvc repro` ran it in the shared tiny pipeline (quick params: 600 training images,
    the first 50 test images, one epoch each)."""
    from mlflow.tracking import MlflowClient

    metrics = json.loads((tiny_pipeline / "metrics" / "quadrants.json").read_text())
    samples = load_params(tiny_pipeline / "params.yaml").quadrants.samples
    assert metrics["S"] == samples >= 100 and metrics["images"] == 50 and metrics["train_images"] == 600
    for given in (1, 2, 3):
        m = metrics[f"given_{given}"]
        for key in ("baseline_nll", "cvae_nll", "cvae_nll_se", "cvae_neg_elbo"):
            assert math.isfinite(m[key]) and m[key] > 0, (given, key, m[key])
        assert m["missing_pixels"] == 784 - 196 * given
        assert m["cvae_neg_elbo"] >= m["cvae_nll"]
        assert metrics["anchor_pyro"][f"given_{given}"]["cvae_nll"] > 0
        figure = tiny_pipeline / "reports" / "figures" / "quadrants" / f"given{given}.png"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = MlflowClient(f"sqlite:///{tiny_pipeline / 'mlflow.db'}")
    (run_,) = client.search_runs([client.get_experiment_by_name("vaelab").experiment_id], "attributes.run_name = 'quadrants'")
    assert run_.info.status == "FINISHED"
    assert run_.data.metrics["given_1.cvae_nll"] == pytest.approx(metrics["given_1"]["cvae_nll"])
    assert run_.data.params["quadrants.samples"] == str(samples)
    assert not list(tiny_pipeline.glob(".quadrants-*"))  # the staging folder is gone
