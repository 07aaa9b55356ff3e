"""The team setup for real: `mlflow server` on a PostgreSQL backend store with proxied artifacts, a
client that only sets MLFLOW_TRACKING_URI, and checks of where everything landed (the REST API, the
database's own tables, the artifact folder)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers import subprocess_env
from helpers.servers import POSTGRES_SH, TrackingServer, pg_rows, running_mlflow_server
from test_team import queue_and_wait

from vaelab.studies.sweeps import points_from_exp_show

pytestmark = pytest.mark.slow  # stage programs and servers: the slow tier

# What a team member's process does: nothing but MLflow's public API, the server taken from the environment.
CLIENT = """
import json, sys
import mlflow
from mlflow import MlflowClient

exp_id = mlflow.create_experiment("team-pg")
with mlflow.start_run(experiment_id=exp_id, run_name="client") as run:
    mlflow.log_params({"beta": 4, "latent_dim": 2})
    for step in (1, 2, 3):
        mlflow.log_metric("test_loss", 120.0 / step, step=step)
    mlflow.log_artifact(sys.argv[1], artifact_path="notes")
client = MlflowClient()
client.create_registered_model("vaelab-vae")
version = client.create_model_version("vaelab-vae", run.info.artifact_uri + "/notes", run_id=run.info.run_id)
print(json.dumps({"exp_id": exp_id, "run_id": run.info.run_id, "artifact_uri": run.info.artifact_uri,
                  "version": version.version}))
"""


def api_json(base: str, endpoint: str, **query: str) -> dict:
    """GET one endpoint of the server's REST API."""
    url = f"{base}{endpoint}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def local_stores(root: Path) -> list[Path]:
    """Anything MLflow's local defaults would have written under ``root``."""
    return [p for name in ("mlflow.db", "mlruns", "mlartifacts") for p in root.rglob(name)]


def run_client(server: TrackingServer, workdir: Path, note: Path) -> dict:
    workdir.mkdir()
    proc = subprocess.run([sys.executable, "-c", CLIENT, str(note)], cwd=workdir, capture_output=True, text=True,
                          env=subprocess_env(MLFLOW_TRACKING_URI=server.url))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_runs_models_and_artifacts_go_to_postgres_and_the_artifact_folder(empty_postgres_url: str,
                                                                          tmp_path: Path) -> None:
    """On a new, empty database, as the README's team setup starts: the server creates MLflow's schema."""
    with running_mlflow_server(empty_postgres_url, tmp_path) as server:
        check_runs_models_and_artifacts(server, empty_postgres_url, tmp_path)


def check_runs_models_and_artifacts(server: TrackingServer, postgres_url: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    note = tmp_path / "hello.txt"
    note.write_bytes(b"written by a client that knows only the server's URL\n")
    made = run_client(server, tmp_path / "client", note)
    exp_id, run_id = made["exp_id"], made["run_id"]

    # Through the server's REST API ...
    exp = api_json(server.url, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="team-pg")["experiment"]
    assert exp["experiment_id"] == exp_id and exp["artifact_location"] == f"mlflow-artifacts:/{exp_id}"
    got = api_json(server.url, "/api/2.0/mlflow/runs/get", run_id=run_id)["run"]
    assert got["info"]["status"] == "FINISHED"
    assert {p["key"]: p["value"] for p in got["data"]["params"]} == {"beta": "4", "latent_dim": "2"}
    history = api_json(server.url, "/api/2.0/mlflow/metrics/get-history", run_id=run_id, metric_key="test_loss")
    assert [(m["step"], m["value"]) for m in history["metrics"]] == [(1, 120.0), (2, 60.0), (3, 40.0)]
    mv = api_json(server.url, "/api/2.0/mlflow/model-versions/get", name="vaelab-vae", version=made["version"])
    assert mv["model_version"]["run_id"] == run_id and mv["model_version"]["status"] == "READY"
    # ... and through MlflowClient (explicit URIs: no process-wide state from other tests).
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    assert [m.step for m in client.get_metric_history(run_id, "test_loss")] == [1, 2, 3]
    assert client.get_registered_model("vaelab-vae").latest_versions[0].source == made["artifact_uri"] + "/notes"

    # The rows are in PostgreSQL, written by the server's SQL store (the client never saw this URL).
    assert pg_rows(postgres_url, "select name, artifact_location from experiments where experiment_id = %s",
                   (int(exp_id),)) == [("team-pg", f"mlflow-artifacts:/{exp_id}")]
    assert pg_rows(postgres_url, "select key, value from params where run_uuid = %s order by key",
                   (run_id,)) == [("beta", "4"), ("latent_dim", "2")]
    assert pg_rows(postgres_url, "select step, value from metrics where run_uuid = %s and key = 'test_loss' "
                   "order by step", (run_id,)) == [(1, 120.0), (2, 60.0), (3, 40.0)]
    assert pg_rows(postgres_url, "select count(*) from registered_models where name = 'vaelab-vae'") == [(1,)]
    assert pg_rows(postgres_url, "select version, run_id, source from model_versions where name = 'vaelab-vae'") \
        == [(int(made["version"]), run_id, made["artifact_uri"] + "/notes")]
    assert pg_rows(postgres_url, "select count(*) from alembic_version") == [(1,)]  # the schema is migrated

    # The artifact went through the server (proxied) into its --artifacts-destination folder.
    assert made["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts"
    stored = server.artifacts / exp_id / run_id / "artifacts" / "notes" / "hello.txt"
    assert stored.read_bytes() == note.read_bytes()
    url = f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{run_id}/artifacts/notes/hello.txt"
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == note.read_bytes()

    # No local default store anywhere: not where the client ran, not where the server ran.
    assert local_stores(tmp_path) == []


def all_at_once(fn, args: list) -> list:
    """Call ``fn(a)`` for every ``a`` in threads released together; return what each raised or returned."""
    import threading

    start, results = threading.Barrier(len(args)), [None] * len(args)

    def call(i: int) -> None:
        start.wait()
        try:
            results[i] = fn(args[i])
        except Exception as err:  # noqa: BLE001 - returned to the caller's assertion
            results[i] = err

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_parallel_stages_racing_on_one_server_all_succeed(
        mlflow_postgres_server: TrackingServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parallel queued experiments hit the server at once, and the SQL store's unique keys make all but one
    writer fail unless vaelab.tracking takes the winner's row (two CI runs failed so): creating the experiment,
    and recording the same training split, keyed by (experiment, name, digest)."""
    import torch
    from mlflow import MlflowClient

    from vaelab import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_postgres_server.url)
    client = MlflowClient(mlflow_postgres_server.url)
    ids = all_at_once(tracking.setup, ["race"] * 4)
    assert len(set(ids)) == 1 and not isinstance(ids[0], Exception), ids
    run_ids = [client.create_run(ids[0]).info.run_id for _ in range(6)]
    images = torch.rand(50, 784, generator=torch.Generator().manual_seed(0))
    errors = all_at_once(lambda r: tracking.log_dataset(r, images, "mnist-train[:50]", "https://example.org/train",
                                                        "training"), run_ids)
    assert errors == [None] * len(run_ids)
    for run_id in run_ids:
        (linked,) = client.get_run(run_id).inputs.dataset_inputs
        assert linked.dataset.name == "mnist-train[:50]"
    assert pg_rows(postgres_url, "select count(*) from datasets where experiment_id = %s", (int(ids[0]),)) == [(1,)]


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(POSTGRES_SH), *args], env=subprocess_env(**env),
                          capture_output=True, text=True)


def test_postgres_script_rejects_bad_input_clearly(tmp_path: Path) -> None:
    bad_port = run_script("start", str(tmp_path / "pg"), "54x")
    assert bad_port.returncode == 1 and "PORT = '54x': expected a port number" in bad_port.stderr
    missing = run_script("start", str(tmp_path / "pg"), "5432", VAELAB_PG_BIN=str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "expected a folder holding initdb and pg_ctl" in missing.stderr
    stop = run_script("stop", str(tmp_path / "empty"))
    assert stop.returncode == 1 and "holds no cluster" in stop.stderr
    assert not (tmp_path / "pg" / "data").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_postgres_script_explains_an_unreachable_folder(postgres_cluster) -> None:
    # pytest's own tmp_path is under a 0700 folder: the `postgres` user cannot enter it.
    private = Path(tempfile.mkdtemp(prefix="vaelab-private-"))
    try:
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        proc = run_script("start", str(private / "pg"), "5432")
        assert proc.returncode == 1 and "cannot enter" in proc.stderr, proc.stderr
        assert not (private / "pg" / "data").exists()
    finally:
        shutil.rmtree(private)


def test_parallel_queued_experiments_on_the_postgres_server_each_log_exactly_their_own_run(
        pipeline_copy: Path, mlflow_postgres_server: TrackingServer, postgres_url: str, tmp_path: Path) -> None:
    """The team setup end to end: three queued experiments of one model (`-j 3`) against `mlflow server` on
    PostgreSQL. Each seed's run holds exactly its own figures and eval metrics, and everything is on the server."""
    from mlflow import MlflowClient

    base, artifacts = mlflow_postgres_server
    project = pipeline_copy
    (project / "mlflow.db").unlink()  # nothing may land in a local store
    exps = {f"bce-beta{b}": ("-S", f"models.vae_bce.beta={b}", "figures@vae_bce", "evaluate@vae_bce") for b in (2, 4, 8)}
    shown = queue_and_wait(project, exps, 3, MLFLOW_TRACKING_URI=base)
    (tmp_path / "exp_show.json").write_text(json.dumps(shown))  # kept for a look when this fails
    assert local_stores(project) == []
    rows = {r["name"]: r["data"] for e in shown[1]["experiments"] for r in e["revs"]}

    client = MlflowClient(base)
    experiment = client.get_experiment_by_name("vaelab")
    seeds = yaml.safe_load((project / "params.yaml").read_text())["seeds"]
    for name in exps:
        runs = {r.data.tags["seed"]: r for r in client.search_runs(
            [experiment.experiment_id], f"tags.`dvc.exp_name` = '{name}' and tags.`vaelab.run` = 'seed'")}
        assert set(runs) == {str(s) for s in seeds}, name
        evals = rows[name]["metrics"]["metrics/eval/vae_bce.json"]["data"]
        for seed, r in runs.items():
            assert r.info.status == "FINISHED" and r.info.artifact_uri.startswith("mlflow-artifacts:")
            assert r.data.tags["dvc.changed_params"] == exps[name][1]
            assert r.data.tags["dvc.baseline_rev"] == shown[1]["rev"]
            assert [m.step for m in client.get_metric_history(r.info.run_id, "epoch/loss/test")] == [1]
            for key in ("eval/reconstruction/mse_per_image", "eval/latent/knn_accuracy"):
                # one value per key: no other experiment logged here
                assert len(client.get_metric_history(r.info.run_id, key)) == 1, (name, seed, key)
            assert r.data.metrics["eval/reconstruction/mse_per_image"] == pytest.approx(
                evals[f"seed{seed}"]["reconstruction"]["mse_per_image"])
            figures = {a.path for a in client.list_artifacts(r.info.run_id, "figures")}
            assert bool(figures) == (seed == str(seeds[0])), (name, seed, figures)
            assert "outputs" in {a.path for a in client.list_artifacts(r.info.run_id)}
            # MLflow 3 keeps a logged model beside the run (a LoggedModel whose source is the run), not in its artifacts.
            (logged,) = client.search_logged_models([experiment.experiment_id],
                                                    filter_string=f"source_run_id = '{r.info.run_id}'")
            assert logged.name == f"vae_bce-seed{seed}" and logged.artifact_location.startswith("mlflow-artifacts:")
            assert r.inputs.dataset_inputs, "the training data is recorded as a dataset input"
    # An experiment logs its models but registers none: the registry and its aliases name the study's models.
    assert client.search_model_versions("name = 'vaelab-vae_bce'") == []
    # ... and it is all really in PostgreSQL and in the server's artifact folder.
    assert pg_rows(postgres_url, "select count(*) from model_versions")[0][0] == 0
    assert pg_rows(postgres_url, "select count(*) from runs")[0][0] >= len(exps) * len(seeds)
    assert any(p.name == "model.pt" for p in artifacts.rglob("model.pt"))

    # The rate–distortion parser reads this real `dvc exp show --json`: the baseline and the beta sweep.
    points = {(p.model, p.beta, p.latent_dim) for p in points_from_exp_show(shown, models=("vae_bce",))}
    assert points == {("vae_bce", 1.0, 2), ("vae_bce", 2.0, 2), ("vae_bce", 4.0, 2), ("vae_bce", 8.0, 2)}
