"""The post's autoencoder: the network params.yaml builds has the post's shape, and the collapse study measures
the collapse (codes on the sigmoid's flat tails, no gradient left) where it happens and not where it does not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vaelab import models
from vaelab.core.config import load_params
from vaelab.data.mnist import INPUT_DIM, load_split
from vaelab.models.layers import StackedBatchNorm, StackedLinear
from vaelab.studies.collapse import first_steps, summary

ROOT = Path(__file__).resolve().parents[1]


def test_ae_post_is_the_posts_network() -> None:
    """4 + 4 linear layers, every hidden layer one width, ReLU between, a sigmoid code in [0, 1]², no normalisation."""
    params = load_params(ROOT / "params.yaml")
    model = models.build(models.spec_of(params, "ae_post"), seed=0)
    for net, first, last in ((model.encoder, INPUT_DIM, 2), (model.decoder, 2, INPUT_DIM)):
        linears = [m for m in net if isinstance(m, StackedLinear)]
        assert len(linears) == 4
        shapes = [tuple(m.weight.shape[1:]) for m in linears]
        widths = {w for s in shapes for w in s} - {first, last}
        assert len(widths) == 1, shapes
        assert shapes[0][0] == first and shapes[-1][1] == last
        assert sum(isinstance(m, torch.nn.ReLU) for m in net) == 3
    assert not any(isinstance(m, StackedBatchNorm) for m in model.modules())
    codes = model.encode(torch.rand(64, INPUT_DIM)).mean
    assert codes.shape == (64, 2) and codes.min() > 0 and codes.max() < 1
    assert model.latent_box == (0.0, 1.0)


@pytest.fixture(scope="module")
def images(mnist_root: Path) -> torch.Tensor:
    return load_split(mnist_root, "train", 6000).images


def _steps(images: torch.Tensor, init: str) -> dict:
    spec = models.spec_from_dict({"kind": "ae", "latent_dim": 2, "hidden": [128, 128, 128], "code_norm": "none",
                                  "init": init}, "models.test")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return summary(first_steps(models.build(spec, seed=0), images, 40, 128, 1e-3, "adam", seed=0))


def test_torch_init_collapses_and_he_init_does_not(images: torch.Tensor) -> None:
    as_written, he = _steps(images, "torch"), _steps(images, "he")
    # nn.Linear's init: the codes start nearly equal, are pushed onto the tails, and the encoder's gradient dies.
    assert as_written["spread_first"] < 0.01
    assert as_written["half_in_tail_at"] is not None and as_written["tail_share_last"] > 0.9
    assert as_written["grad_last"] < 1e-3 * as_written["grad_peak"]
    # He's init: the codes start apart and stay on the sigmoid's slope.
    assert he["spread_first"] > 5 * as_written["spread_first"]
    assert he["spread_last"] > 0.05 and he["grad_last"] > 1e-2 * he["grad_peak"]


def test_the_reports_mechanism_states_the_measured_numbers() -> None:
    from vaelab.report.sections.post_ae import mechanism

    collapsed = {"steps": 60, "half_in_tail_at": 11, "pre_abs_first": 0.04, "pre_abs_last": 69.1, "tail_share_last": 1.0,
                 "spread_first": 0.0020, "spread_last": 0.0, "grad_peak": 3.65, "grad_last": 0.0}
    text = mechanism("ae_post", {"summary": collapsed})
    assert "collapses" in text and "by step 11" in text and "100%" in text and "0.0020" in text and "3.65" in text
    kept = {**collapsed, "half_in_tail_at": None, "tail_share_last": 0.46, "spread_last": 0.14, "grad_last": 1.18}
    assert "does not collapse" in mechanism("ae_post", {"summary": kept})
