"""The SBI benchmark's anchor as vaelab runs it (vaelab.sbi.npe: sbi's NPE with sbibm's settings): it trains on the
task's simulations, is seeded (the same seed gives the same network and samples), samples inside the prior's
support, and rejects simulations of the wrong shape with a clear error."""

from __future__ import annotations

import pytest
import torch

from vaelab.core.errors import ConfigError
from vaelab.sbi.npe import sample_npe, train_npe
from vaelab.sbi.tasks import get_task


@pytest.fixture(scope="module")
def simulations():
    task = get_task("two_moons")
    g = torch.Generator().manual_seed(0)
    theta = task.sample_prior(300, g)
    return task, theta, task.simulate(theta, g)


def test_npe_is_seeded_and_samples_inside_the_prior(simulations, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # sbi's default tracker would write ./sbi-logs
    task, theta, x = simulations
    a, b = (train_npe(task, theta, x, seed=3, max_num_epochs=3) for _ in range(2))
    assert a.epochs == len(a.validation_loss) in (3, 4)  # sbi counts the epoch that stops training
    x_o = x[:1]
    samples = sample_npe(a, x_o, 200, seed=4)
    assert samples.shape == (200, 2) and bool(task.inside_prior(samples).all())
    assert torch.equal(samples, sample_npe(b, x_o, 200, seed=4))
    assert not torch.equal(samples, sample_npe(a, x_o, 200, seed=5))
    assert list(tmp_path.iterdir()) == []  # no TensorBoard logs left behind


def test_simulations_of_the_wrong_shape_are_a_clear_error(simulations) -> None:
    task, theta, x = simulations
    with pytest.raises(ConfigError, match=r"expected theta \[n, 2\] and x \[n, 2\]"):
        train_npe(task, theta, x[:, :1], seed=0)
