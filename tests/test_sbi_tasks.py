"""The sbibm tasks in torch (vaelab.sbi.tasks), sbibm's published files (vaelab.sbi.sbibm_files) and C2ST (vaelab.sbi.c2st).

No mocks: the module's fixture downloads the real sbibm 1.1.0 wheel from the package index (~18 MB, once) and
extracts its files; the exact reference posteriors are checked against sbibm's own samples with the real C2ST.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal

from vaelab.core.errors import ConfigError, DataError, DownloadError, NoReferencePosteriorError
from vaelab.sbi.c2st import c2st
from vaelab.sbi.sbibm_files import (FILES, OBSERVATIONS, download_wheel, fetch_sbibm_files, observation,
                                    reference_samples, relative_path, true_parameters)
from vaelab.sbi.sbibm_manifest import SHA256
from vaelab.sbi.tasks import TASKS, get_task

EXACT_TASKS = ("two_moons", "gaussian_mixture")  # gaussian_linear: by its moments (10-d C2ST is slow)
LIKELIHOOD_TASKS = ("gaussian_linear", "two_moons", "gaussian_mixture", "slcp")
# C2ST of an exact sampler against sbibm's samples, 2,000 draws each. Measured (observation 1, seed 1): between two
# disjoint parts of sbibm's own samples 0.472 (two_moons) and 0.483 (gaussian_mixture) at 2,000 vs 2,000, 0.493 and
# 0.506 at 5,000 vs 5,000; the exact samplers gave 0.485 and 0.503. The standard error of an accuracy on 4,000
# held-out draws is ~0.008, so 0.55 is ~6 of them above chance: a wrong sampler (a missing mode, a wrong scale)
# scores far higher.
C2ST_N = 2000
C2ST_SAME = 0.55


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def sbibm_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sbibm wheel, downloaded from the package index with pip and verified (once per module)."""
    return download_wheel(tmp_path_factory.mktemp("sbibm-wheel"))


@pytest.fixture(scope="module")
def sbibm_root(tmp_path_factory: pytest.TempPathFactory, sbibm_wheel: Path) -> Path:
    """sbibm's files for the four tasks, extracted by the real fetch function (read-only use)."""
    root = tmp_path_factory.mktemp("sbibm")
    sources = fetch_sbibm_files(root, wheel=sbibm_wheel)
    assert set(sources) == set(SHA256) and "present" not in sources.values()
    return root


# --- the registry --------------------------------------------------------------------------------------------

def test_registry_names_and_dimensions():
    assert {name: (t.dim_theta, t.dim_x) for name, t in TASKS.items()} == {
        "gaussian_linear": (10, 10), "two_moons": (2, 2), "gaussian_mixture": (2, 2), "slcp": (5, 8)}
    assert all(get_task(name).name == name for name in TASKS)


@pytest.mark.parametrize("bad", ["two-moons", "", "SLCP"])
def test_unknown_task_is_a_config_error_naming_the_known_tasks(bad):
    with pytest.raises(ConfigError, match="expected one of") as err:
        get_task(bad)
    assert all(name in str(err.value) for name in TASKS)


# --- priors and simulators -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(TASKS))
def test_prior_and_simulator_shapes_support_and_dtype(name):
    task = get_task(name)
    theta = task.sample_prior(500, gen(0))
    assert theta.shape == (500, task.dim_theta) and theta.dtype == torch.float32
    assert torch.isfinite(task.prior.log_prob(theta)).all()
    bounds = task.prior_bounds
    if bounds is not None:
        assert ((theta >= bounds.low) & (theta <= bounds.high)).all()
        assert theta.min() < bounds.low[0] * 0.9 and theta.max() > bounds.high[0] * 0.9  # fills the box
    x = task.simulate(theta, gen(1))
    assert x.shape == (500, task.dim_x) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert task.simulate(theta.double(), gen(1)).dtype == torch.float64


def test_prior_bounds_are_sbibms():
    assert TASKS["gaussian_linear"].prior_bounds is None
    for name, bound in (("two_moons", 1.0), ("gaussian_mixture", 10.0), ("slcp", 3.0)):
        low, high = TASKS[name].prior_bounds
        assert torch.equal(low, torch.full((TASKS[name].dim_theta,), -bound)) and torch.equal(high, -low)
    # gaussian_linear: N(0, 0.1 I), 0.1 a variance (sbibm's code; its docstring says standard deviation)
    theta = TASKS["gaussian_linear"].sample_prior(20000, gen(0))
    assert theta.var(0).mean().item() == pytest.approx(0.1, rel=0.03)


@pytest.mark.parametrize("name", list(TASKS))
def test_simulation_is_fixed_by_the_generator_seed(name):
    task = get_task(name)
    theta = task.sample_prior(64, gen(3))
    assert torch.equal(theta, task.sample_prior(64, gen(3)))
    assert torch.equal(task.simulate(theta, gen(7)), task.simulate(theta, gen(7)))
    assert not torch.equal(task.simulate(theta, gen(7)), task.simulate(theta, gen(8)))


@pytest.mark.parametrize("name", list(TASKS))
def test_simulate_rejects_a_theta_of_the_wrong_shape(name):
    task = get_task(name)
    with pytest.raises(ValueError, match=rf"expected theta of shape \[n, {task.dim_theta}\]"):
        task.simulate(torch.zeros(3, task.dim_theta + 1), gen(0))


# --- likelihoods -------------------------------------------------------------------------------------------

def test_gaussian_linear_likelihood_is_the_normal_log_prob():
    task = TASKS["gaussian_linear"]
    theta = task.sample_prior(5, gen(0))
    x = task.simulate(theta, gen(1))
    expected = MultivariateNormal(theta, covariance_matrix=0.1 * torch.eye(10)).log_prob(x)
    torch.testing.assert_close(task.log_likelihood(theta, x), expected)


def test_gaussian_mixture_likelihood_is_the_mixture_log_prob():
    task = TASKS["gaussian_mixture"]
    theta = task.sample_prior(5, gen(0))
    x = task.simulate(theta, gen(1))
    scales = torch.tensor([1.0, 0.1]).expand(5, 2)
    mixture = MixtureSameFamily(Categorical(torch.tensor([0.5, 0.5]).expand(5, 2)),
                                Independent(Normal(theta.unsqueeze(1).expand(5, 2, 2), scales.unsqueeze(-1).expand(5, 2, 2)), 1))
    torch.testing.assert_close(task.log_likelihood(theta, x), mixture.log_prob(x))


def test_slcp_likelihood_is_four_draws_of_the_papers_gaussian():
    task = TASKS["slcp"]
    theta = task.sample_prior(5, gen(0))
    x = task.simulate(theta, gen(1))
    expected = []
    for t, xi in zip(theta, x):
        s1, s2, rho = t[2] ** 2, t[3] ** 2, torch.tanh(t[4])  # Lueckmann et al., appendix T.3
        cov = torch.tensor([[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]]) + 1e-6 * torch.eye(2)
        expected.append(MultivariateNormal(t[:2], covariance_matrix=cov).log_prob(xi.reshape(4, 2)).sum())
    torch.testing.assert_close(task.log_likelihood(theta, x), torch.stack(expected), rtol=1e-4, atol=1e-3)


def test_two_moons_likelihood_is_a_density_over_x():
    """Integrates to 1 over x (a grid around the moon): sbibm's radial-only term would not."""
    task = TASKS["two_moons"]
    step = 5e-4
    for theta in (torch.tensor([[0.3, -0.6]], dtype=torch.float64), torch.tensor([[-0.5, 0.1]], dtype=torch.float64)):
        centre = task._shift(theta)[0] + torch.tensor([0.25, 0.0], dtype=torch.float64)
        axis = torch.arange(-0.15, 0.15, step, dtype=torch.float64) + step / 2  # cell centres, never ρ = 0
        grid = torch.cartesian_prod(axis + centre[0], axis + centre[1])
        mass = task.log_likelihood(theta.expand(grid.shape[0], 2), grid).exp().sum() * step**2
        assert mass.item() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("name", LIKELIHOOD_TASKS)
def test_likelihood_of_simulated_data_peaks_at_the_true_theta(name):
    task = get_task(name)
    theta = task.sample_prior(1, gen(11))
    x = task.simulate(theta.expand(2000, -1), gen(12))
    far = theta + 0.3 * (task.prior_bounds.high[0] if task.prior_bounds is not None else 1.0)
    at_true = task.log_likelihood(theta.expand(2000, -1), x)
    assert torch.isfinite(at_true).all()
    assert at_true.mean() > task.log_likelihood(far.expand(2000, -1), x).mean() + 1.0


# --- sbibm's files ---------------------------------------------------------------------------------------------

def test_manifest_covers_four_tasks_ten_observations_three_files():
    assert len(SHA256) == len(TASKS) * len(OBSERVATIONS) * len(FILES) == 120
    assert set(SHA256) == {relative_path(t, k, f) for t in TASKS for k in OBSERVATIONS for f in FILES}


def test_extracted_files_match_the_manifest(sbibm_root):
    for rel, digest in SHA256.items():
        assert hashlib.sha256((sbibm_root / rel).read_bytes()).hexdigest() == digest, rel
    assert set(fetch_sbibm_files(sbibm_root).values()) == {"present"}  # verified, nothing downloaded again


@pytest.mark.parametrize("name", list(TASKS))
def test_readers_give_sbibms_shapes(sbibm_root, name):
    task = get_task(name)
    assert observation(name, 1, sbibm_root).shape == (1, task.dim_x)
    theta = true_parameters(name, 10, sbibm_root)
    assert theta.shape == (1, task.dim_theta) and theta.dtype == torch.float32
    ref = reference_samples(name, 1, sbibm_root)
    assert ref.shape == (10000, task.dim_theta) and torch.isfinite(ref).all()
    if task.prior_bounds is not None:
        assert ((ref >= task.prior_bounds.low) & (ref <= task.prior_bounds.high)).all()


def test_two_moons_observation_1_is_sbibms(sbibm_root):
    """The values of sbibm's csv files for two_moons observation 1 (a fixed point of the readers)."""
    torch.testing.assert_close(observation("two_moons", 1, sbibm_root), torch.tensor([[-0.6396706, 0.16234657]]))
    torch.testing.assert_close(true_parameters("two_moons", 1, sbibm_root), torch.tensor([[-0.8176656, -0.5756806]]))


@pytest.mark.parametrize("k", [0, 11, "1", 1.0])
def test_observation_number_out_of_range_is_a_config_error(sbibm_root, k):
    with pytest.raises(ConfigError, match=r"expected an integer in 1\.\.10"):
        observation("two_moons", k, sbibm_root)


def test_unknown_task_in_a_reader_is_a_config_error(sbibm_root):
    with pytest.raises(ConfigError, match="expected one of"):
        reference_samples("moons", 1, sbibm_root)


def test_missing_folder_is_a_data_error_naming_the_file(tmp_path):
    with pytest.raises(DataError, match=r"two_moons/num_observation_3/observation\.csv: missing.*fetch_sbibm_files"):
        observation("two_moons", 3, tmp_path / "nowhere")


def test_corrupt_file_is_detected_and_repaired(sbibm_root, sbibm_wheel, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(sbibm_root, root)
    rel = relative_path("slcp", 2, "reference_posterior_samples.csv.bz2")
    (root / rel).write_bytes(b"parameter_1\n0.0\n")
    with pytest.raises(DataError, match="checksum mismatch"):
        reference_samples("slcp", 2, root)
    sources = fetch_sbibm_files(root, wheel=sbibm_wheel)
    assert sources[rel] == str(sbibm_wheel) and sum(v == "present" for v in sources.values()) == len(SHA256) - 1
    assert reference_samples("slcp", 2, root).shape == (10000, 5)


def test_a_wrong_wheel_is_refused(tmp_path):
    fake = tmp_path / "sbibm-1.1.0-py2.py3-none-any.whl"
    fake.write_bytes(b"not the wheel")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_sbibm_files(tmp_path / "root", wheel=fake)
    assert not (tmp_path / "root").exists()


# --- exact reference posteriors against sbibm's samples ----------------------------------------------------

@pytest.mark.parametrize("k", [1, 2])
def test_gaussian_linear_posterior_matches_sbibms_samples(sbibm_root, k):
    """A Gaussian is fixed by its mean and covariance, so these are compared instead of a C2ST (in 10-d sbibm's MLP
    C2ST takes minutes here even on 1,000 draws: see the report)."""
    task = TASKS["gaussian_linear"]
    x_o = observation("gaussian_linear", k, sbibm_root)
    mean, variance = task.posterior_moments(x_o)
    torch.testing.assert_close(mean, x_o[0] / 2)  # sbibm's constants: precisions 10 + 10, mean x_o / 2
    assert variance == pytest.approx(0.05)
    ours = task.reference_posterior(x_o, 10000, gen(k))
    # 10,000 draws: the standard error of a mean is sqrt(0.05 / 1e4) ≈ 0.0022, of a (co)variance ≈ 0.0007
    for draws in (ours, reference_samples("gaussian_linear", k, sbibm_root)):
        assert (draws.mean(0) - mean).abs().max() < 0.01
        assert (torch.cov(draws.T) - variance * torch.eye(10)).abs().max() < 0.004


@pytest.mark.parametrize("name", EXACT_TASKS)
@pytest.mark.parametrize("k", [1, 2])
def test_exact_reference_posterior_matches_sbibms_samples(sbibm_root, name, k):
    task = get_task(name)
    ours = task.reference_posterior(observation(name, k, sbibm_root), C2ST_N, gen(100 + k))
    assert ours.shape == (C2ST_N, task.dim_theta) and ours.dtype == torch.float32
    if task.prior_bounds is not None:
        assert task.inside_prior(ours).all()
    assert c2st(ours, reference_samples(name, k, sbibm_root)[:C2ST_N], seed=1) < C2ST_SAME


def test_two_moons_reference_posterior_is_bimodal(sbibm_root):
    """Both signs of |z0| are drawn: the two crescents each hold about half of the draws."""
    task = TASKS["two_moons"]
    ours = task.reference_posterior(observation("two_moons", 1, sbibm_root), 4000, gen(5))
    z0 = task._rotate(ours, -math.pi / 4)[:, 0]
    assert 0.4 < (z0 > 0).float().mean().item() < 0.6


def test_the_c2st_check_fails_a_sampler_that_misses_a_mode(sbibm_root):
    """The threshold has teeth: two_moons draws from one crescent only score ~0.75 against sbibm's samples."""
    task = TASKS["two_moons"]
    ours = task.reference_posterior(observation("two_moons", 1, sbibm_root), 2 * C2ST_N, gen(3))
    one_mode = ours[task._rotate(ours, -math.pi / 4)[:, 0] > 0][:C2ST_N // 2]
    assert c2st(one_mode, reference_samples("two_moons", 1, sbibm_root)[:C2ST_N // 2], seed=1) > 0.65


def test_slcp_has_no_exact_reference_posterior():
    with pytest.raises(NoReferencePosteriorError, match=r"sbibm_files\.reference_samples"):
        TASKS["slcp"].reference_posterior(torch.zeros(8), 10, gen(0))


# --- C2ST ------------------------------------------------------------------------------------------------------

def test_c2st_is_chance_on_one_distribution_and_one_on_two():
    a = torch.randn(1000, 2, generator=gen(0))
    b = torch.randn(1000, 2, generator=gen(1))
    assert 0.44 < c2st(a, b, seed=1) < C2ST_SAME
    apart = c2st(a + torch.tensor([2.0, 0.0]), b, seed=1)
    assert apart > 0.8  # N(0, I) vs N((2, 0), I): the best classifier is right with probability Φ(1) ≈ 0.84
    assert c2st(a + torch.tensor([2.0, 0.0]), b, seed=1) == apart  # the seed fixes the folds and the classifier


def test_c2st_subsamples_to_equal_sizes_and_checks_its_inputs():
    a = torch.randn(600, 2, generator=gen(0))
    b = torch.randn(900, 2, generator=gen(1)).double()
    assert 0.4 < c2st(a, b, seed=2) < 0.6
    with pytest.raises(ValueError, match=r"expected two samples \[n, d\] and \[m, d\]"):
        c2st(a, b[:, :1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        c2st(a, torch.full((600, 2), math.nan))
