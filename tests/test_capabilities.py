"""Which measures and figures apply to which model is said once, by what each needs of a model
(vaelab.measures.capabilities.Needs): the evaluation and the figures ask, never test a kind."""

from __future__ import annotations

import pytest

from helpers import REPO

from vaelab import models
from vaelab.core.config import load_params
from vaelab.measures.capabilities import Needs
from vaelab.studies.scorecard import MEASURES
from vaelab.viz.model_figures import expected_kinds

PARAMS = load_params(REPO / "params.yaml")

# The groups of metrics/eval/<model>.json each kind of model of the default study gets, in the file's order.
GROUPS = {
    "ae": ["reconstruction", "latent", "grid", "continuity", "sharpness"],
    # The Bernoulli on grey pixels is no density of them: no bits/dim; its pixels are not binary: no binarised track.
    "vae_bce": ["reconstruction", "elbo", "iwae", "latent", "grid", "continuity", "sharpness", "samples"],
    "vae_sigma": ["reconstruction", "elbo", "iwae", "latent", "grid", "continuity", "sharpness", "grey8bit",
                  "grey8bit_exact", "samples"],
    "vae_bin": ["reconstruction", "elbo", "iwae", "latent", "grid", "continuity", "sharpness", "binarized",
                "binarized_exact", "samples"],
    "cvae": ["reconstruction", "elbo", "iwae", "latent", "conditional", "style", "sharpness", "samples"],
}


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_the_registry_gives_each_model_its_groups(name: str) -> None:
    model = models.build(models.spec_of(PARAMS, name))
    groups = list(dict.fromkeys(m.group for m in MEASURES if m.needs.met_by(model)))
    assert groups == GROUPS[name]


def test_figures_follow_what_a_model_has() -> None:
    ae, cvae = (models.build(models.spec_of(PARAMS, n)) for n in ("ae", "cvae"))
    assert "prior_samples" not in expected_kinds(ae) and "own_grid" in expected_kinds(ae)
    assert {"class_samples", "style_transfer"} <= set(expected_kinds(cvae)) and "own_grid" not in expected_kinds(cvae)


def test_needs_reads_density_only_of_a_model_with_a_prior() -> None:
    """The AE has no likelihood to ask: the prior's miss stops the check before it."""
    ae = models.build(models.spec_of(PARAMS, "ae"))
    assert not Needs(prior=True, density=True).met_by(ae) and Needs(prior=False).met_by(ae)
