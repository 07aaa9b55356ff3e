"""Bad params stop a stage before any work: one message naming key path, value and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import REPO, run, set_params
from helpers.workdir import train

from vaelab.core.errors import ConfigError


def bad_params(tmp_path: Path, edit) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path


CASES = {
    "unknown key": (lambda p: p["train"].update(epoch=3), ["train.epoch", "unknown key", "epochs"]),
    "wrong type": (lambda p: p["train"].update(batch_size="big"), ["train.batch_size", "'big'", "expected int"]),
    "bool as int": (lambda p: p["train"].update(epochs=True), ["train.epochs", "True", "expected int"]),
    "epochs < 1": (lambda p: p["train"].update(epochs=0), ["train.epochs = 0", ">= 1"]),
    "latent_dim < 1": (lambda p: p["models"]["ae"].update(latent_dim=0), ["models.ae.latent_dim = 0", ">= 1"]),
    "lr <= 0": (lambda p: p["train"].update(lr=0.0), ["train.lr = 0.0", "> 0"]),
    "lr infinite": (lambda p: p["train"].update(lr=float("inf")), ["train.lr = inf", "finite"]),
    "batch_size < 1": (lambda p: p["train"].update(batch_size=-5), ["train.batch_size = -5", ">= 1"]),
    "unknown kind": (lambda p: p["models"]["ae"].update(kind="gan"),
                     ["models.ae.kind = 'gan'", "registered kinds", "'ae', 'cvae', 'vae'"]),
    "unknown likelihood": (lambda p: p["models"]["vae_bce"].update(likelihood={"name": "poisson"}),
                           ["models.vae_bce.likelihood.name = 'poisson'", "'bernoulli', 'beta'"]),
    "ae has no likelihood": (lambda p: p["models"]["ae"].update(likelihood={"name": "bernoulli"}),
                             ["models.ae.likelihood: unknown key"]),
    "beta on grey pixels": (lambda p: p["models"]["vae_beta"].update(data="grey"),
                            ["models.vae_beta.data = 'grey'", "dequantized"]),
    "no seeds": (lambda p: p.update(seeds=[]), ["seeds = []", "non-empty list of distinct seeds"]),
    "a model's repeated seeds": (lambda p: p["models"]["ae"].update(seeds=[1, 1]),
                                 ["models.ae.seeds = [1, 1]", "distinct integer seeds"]),
    "a model's seed as text": (lambda p: p["models"]["vae_bce"].update(seeds=["42"]),
                               ["models.vae_bce.seeds = ['42']", "integer seeds"]),
    "hidden width 0": (lambda p: p["models"]["ae"].update(hidden=[512, 0]), ["models.ae.hidden = [512, 0]", ">= 1"]),
    "train_size > data": (lambda p: p["data"].update(train_size=60001),
                          ["data.train_size = 60001", "between 1 and 60000"]),
    "test_size > data": (lambda p: p["data"].update(test_size=10001),
                         ["data.test_size = 10001", "between 1 and 10000"]),
    "unknown model": (lambda p: p["models"].pop("vae_sigma"), ["models.vae_sigma", "no such model"]),
    "claim about no model": (lambda p: p["claims"][0].update(model="vae_gone"),
                             ["claims[0].model = 'vae_gone'", "expected a key of `models`"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_load_params_names_key_value_and_expectation(tmp_path: Path, case: str) -> None:
    from vaelab.core.config import load_params

    edit, expected = CASES[case]
    bad_params(tmp_path, edit)
    from vaelab.models import check_all, spec_of

    model = {"unknown likelihood": "vae_bce", "beta on grey pixels": "vae_beta", "unknown model": "vae_sigma"}.get(case, "ae")
    with pytest.raises(ConfigError) as err:
        params = load_params(tmp_path / "params.yaml")  # the train stage's first calls
        spec_of(params, model)
        check_all(params)
    for fragment in expected:
        assert fragment in str(err.value)


# Through the real stage CLI (each start costs seconds, so a representative subset).
@pytest.mark.slow
@pytest.mark.parametrize("case", ["unknown key", "unknown kind"])
def test_bad_params_stop_the_train_stage_before_any_work(tmp_path: Path, case: str) -> None:
    edit, expected = CASES[case]
    workdir = bad_params(tmp_path, edit)
    before = sorted(p.name for p in workdir.iterdir())

    proc = train(workdir, "ae", check=False)  # one real stage start per case: the wording is checked in-process

    assert proc.returncode == 1, proc.stderr
    for fragment in expected:
        assert fragment in proc.stderr, (fragment, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in workdir.iterdir()) == before  # no mlflow.db, models/, checkpoints/


def test_yaml_1_1_float_text_is_read_as_a_float(tmp_path: Path) -> None:
    from vaelab.core.config import load_params

    (tmp_path / "p.yaml").write_text((REPO / "params.yaml").read_text().replace("lr: 0.001", "lr: 1e-3"))
    assert load_params(tmp_path / "p.yaml").train.lr == 1e-3


@pytest.mark.slow
def test_dvc_repro_with_bad_params_fails_and_records_nothing(project: Path) -> None:
    set_params(project, train__epochs=0)

    proc = run(["dvc", "repro", "train@ae"], project, check=False)

    assert proc.returncode != 0
    assert "train.epochs = 0: expected >= 1" in proc.stdout + proc.stderr
    assert not (project / "models" / "ae").exists()
    assert not (project / "metrics" / "train" / "ae.json").exists()
    lock = project / "dvc.lock"
    assert not lock.exists() or "train@ae" not in lock.read_text()


def test_evaluation_counts_beyond_a_smaller_test_set_are_refused(tmp_path: Path) -> None:
    from vaelab.core.config import load_params
    from vaelab.studies import evaluate

    bad_params(tmp_path, lambda p: p["data"].update(test_size=5000))  # sample_images stays 10,000
    with pytest.raises(ConfigError, match=r"evaluate.sample_images = 10000, but the test set has 5000 images"):
        evaluate.check(load_params(tmp_path / "params.yaml"), "ae", tmp_path)


def test_a_model_entry_may_name_its_own_seeds(tmp_path: Path) -> None:
    from vaelab import models
    from vaelab.core.config import load_params

    def edit(p):
        p["seeds"] = [7, 8]
        p["models"]["ae"]["seeds"] = [3, 1, 2]
        p["models"]["vae_mse"].pop("seeds", None)
    params = load_params(bad_params(tmp_path, edit) / "params.yaml")
    assert params.seeds_of("ae") == [3, 1, 2] and params.seeds_of("vae_mse") == [7, 8]
    assert "seeds" not in models.spec_of(params, "ae").as_dict()   # the study's setting, not the model's
