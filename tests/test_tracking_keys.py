"""Metric names and model descriptions as the MLflow UI shows them (vaelab.tracking.keys, vaelab.models.cards): the
sections sort per-epoch curves first, a parent's summary is the mean and interval over seeds, and each model's
description names what it changes from its nearest neighbour in params.yaml."""

from __future__ import annotations

import pytest
from helpers import REPO

from vaelab import tracking
from vaelab.core import stats
from vaelab.core.config import load_params
from vaelab.models.cards import describe, neighbour


def test_sections_sort_per_epoch_curves_first_then_evaluation_then_intervals() -> None:
    epoch = tracking.epoch_metrics({"loss": 2.0, "kl": 1.0}, {"loss": 3.0, "mse": 4.0}, {"sigma": 0.2})
    assert epoch == {"epoch/loss/train": 2.0, "epoch/kl/train": 1.0, "epoch/loss/test": 3.0, "epoch/mse/test": 4.0,
                     "epoch/decoder/sigma": 0.2}
    evals = tracking.eval_metrics({"elbo.neg_elbo": 90.0, "samples.fid": 12.0, "continuity.jump_ratio": None})
    assert evals == {"eval/elbo/neg_elbo": 90.0, "eval/samples/fid": 12.0}   # null (not applicable): not logged
    summary = tracking.across_seeds(stats.across_seeds([{**epoch, **evals}, {**epoch, **evals}]))
    section = lambda key: key.rsplit("/", 1)[0]  # noqa: E731 - how the UI groups keys
    kinds = [k.split("/")[0] for k in sorted(summary, key=section)]
    assert kinds == sorted(kinds, key=["epoch", "eval", "seeds_ci95"].index)  # the UI's alphabetical order
    assert tracking.EPOCH_KEY in epoch


def test_a_parents_summary_is_the_mean_and_the_intervals_half_width() -> None:
    per_seed = [{"epoch/loss/test": v} for v in (1.0, 2.0, 4.0)]
    summary = tracking.across_seeds(stats.across_seeds(per_seed))
    iv = stats.mean_ci([1.0, 2.0, 4.0])
    assert summary["epoch/loss/test"] == pytest.approx(7 / 3)
    assert summary["seeds_ci95/epoch/loss/test"] == pytest.approx((iv.high - iv.low) / 2)
    assert tracking.across_seeds(stats.across_seeds(per_seed[:1])) == {"epoch/loss/test": 1.0}  # one seed: no interval


def test_descriptions_say_what_a_model_changes_from_its_nearest_neighbour() -> None:
    params = load_params(REPO / "params.yaml")
    assert neighbour(params, "ae_post") == ("ae_post_as_written", {"init": ("torch", "he")})
    other, diff = neighbour(params, "vae_bce")
    assert len(diff) == 1 and diff.popitem()[1][1] in ("bernoulli", "grey")
    text = describe(params, "vae_sigma")
    assert text.startswith("**vae_sigma** (kind `vae`)")
    assert "Rybkin et al. 2021, sec. 3)" in text  # a full sentence, not cut at "et al."
    assert "`likelihood.name` gaussian_optimal → gaussian_learned" in text
