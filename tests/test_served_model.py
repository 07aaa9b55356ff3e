"""The MLflow Model a user loads does what a VAE's user asks of it: codes for images, images for chosen codes,
samples from the prior, reconstructions; loaded through MLflow from a real store, and served by `mlflow models
serve` on 127.0.0.1 (the slow tier)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from helpers import create_mlflow_schema, subprocess_env
from helpers.servers import _stop_group, free_port
from vaelab import models, tracking
from vaelab.data.mnist import load_split

SMALL = {"latent_dim": 2, "hidden": [32, 16, 8]}
SPECS = {"vae": {"kind": "vae", **SMALL, "likelihood": {"name": "bernoulli"}},
         "cvae": {"kind": "cvae", **SMALL, "likelihood": {"name": "bernoulli"}},
         "ae": {"kind": "ae", **SMALL}}


@pytest.fixture(scope="module")
def logged(mnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each small model saved, logged by vaelab's own log_model to a fresh SQLite store: name -> model URI."""
    root = tmp_path_factory.mktemp("served")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    create_mlflow_schema(uri, root)
    mlflow.set_tracking_uri(uri)
    example = load_split(mnist_root, "test", 5).images
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        experiment = tracking.setup("served")
        for name, spec in SPECS.items():
            model = models.build(models.spec_from_dict(spec, f"models.{name}"), seed=0)
            models.save(model, root / f"{name}.pt")
            run_id = mlflow.MlflowClient(uri).create_run(experiment).info.run_id
            rows = torch.cat([example, torch.arange(5)[:, None].float()], 1) if model.conditional else example
            _, model_id = tracking.log_model(run_id, root / f"{name}.pt", rows.numpy(), name, None, {})
            out[name] = f"models:/{model_id}"
    return out


@pytest.fixture(scope="module")
def images(mnist_root: Path) -> np.ndarray:
    return load_split(mnist_root, "test", 8).images.numpy()


def test_a_vae_encodes_decodes_samples_and_reconstructs(logged, images) -> None:
    model = mlflow.pyfunc.load_model(logged["vae"])
    posterior = model.predict(images, params={"method": "encode"})
    assert posterior.shape == (8, 4) and posterior.dtype == np.float32 and (posterior[:, 2:] > 0).all()
    codes = posterior[:, :2]                                                 # the means; then the scales
    decoded = model.predict(codes, params={"method": "decode"})
    np.testing.assert_allclose(model.predict(images), decoded, atol=1e-6)   # reconstruct = decode(encode(x))
    grid = np.stack(np.meshgrid(np.linspace(-2, 2, 4), np.linspace(-2, 2, 4)), -1).reshape(-1, 2).astype(np.float32)
    tiles = model.predict(grid, params={"method": "decode"})
    assert tiles.shape == (16, 784) and 0 <= tiles.min() and tiles.max() <= 1
    first, again, other = (model.predict(np.zeros((6, 1), np.float32), params={"method": "sample", "seed": s})
                           for s in (0, 0, 1))
    assert first.shape == (6, 784) and np.array_equal(first, again) and not np.array_equal(first, other)


def test_a_conditional_model_takes_the_label_as_the_last_column(logged, images) -> None:
    model = mlflow.pyfunc.load_model(logged["cvae"])
    labelled = np.concatenate([images, np.full((8, 1), 3, np.float32)], 1)
    codes = model.predict(labelled, params={"method": "encode"})[:, :2]
    as_three = model.predict(np.concatenate([codes, np.full((8, 1), 3, np.float32)], 1), params={"method": "decode"})
    as_seven = model.predict(np.concatenate([codes, np.full((8, 1), 7, np.float32)], 1), params={"method": "decode"})
    np.testing.assert_allclose(model.predict(labelled), as_three, atol=1e-6)
    assert not np.allclose(as_three, as_seven)                           # the label changes the decoded image
    assert model.predict(np.full((4, 1), 5, np.float32), params={"method": "sample"}).shape == (4, 784)


def test_wrong_rows_and_an_autoencoder_sample_say_what_was_expected(logged, images) -> None:
    vae, ae = mlflow.pyfunc.load_model(logged["vae"]), mlflow.pyfunc.load_model(logged["ae"])
    with pytest.raises(Exception, match=r"method 'decode': got rows of shape \(8, 784\): expected \[N, 2\]"):
        vae.predict(images, params={"method": "decode"})
    with pytest.raises(Exception, match="has no prior to sample"):
        ae.predict(np.zeros((2, 1), np.float32), params={"method": "sample"})
    with pytest.raises(Exception, match="expected one of reconstruct, encode, decode, sample"):
        vae.predict(images, params={"method": "generate"})
    code = ae.predict(images, params={"method": "encode"})
    assert code.shape == (8, 4) and (code[:, 2:] == 0).all() and ((0 < code[:, :2]) & (code[:, :2] < 1)).all()


@pytest.mark.slow
def test_the_served_model_answers_over_http(logged, images, tmp_path: Path) -> None:
    """`mlflow models serve` (in this environment, on 127.0.0.1): the same numbers as the loaded model."""
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(["mlflow", "models", "serve", "-m", logged["vae"], "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            env=subprocess_env(MLFLOW_TRACKING_URI=mlflow.get_tracking_uri()), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(f"{base}/ping", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"mlflow models serve did not come up:\n{(tmp_path / 'serve.log').read_text()[-4000:]}")

        def post(rows: np.ndarray, params: dict) -> np.ndarray:
            body = json.dumps({"inputs": rows.tolist(), "params": params}).encode()
            request = urllib.request.Request(f"{base}/invocations", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as answer:
                return np.asarray(json.loads(answer.read())["predictions"], dtype=np.float32)

        local = mlflow.pyfunc.load_model(logged["vae"])
        posterior = post(images, {"method": "encode"})
        np.testing.assert_allclose(posterior, local.predict(images, params={"method": "encode"}), atol=1e-5)
        np.testing.assert_allclose(post(posterior[:, :2], {"method": "decode"}), local.predict(images), atol=1e-5)
        assert post(np.zeros((3, 1), np.float32), {"method": "sample", "seed": 4}).shape == (3, 784)
    finally:
        _stop_group(proc)
        log.close()
