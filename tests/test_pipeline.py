"""End to end: `dvc repro` in a temporary git copy trains the three models and records them in MLflow."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from conftest import run, set_params

MODELS = ("ae", "vae_mse", "vae_bce")


def train_stages_run(stdout: str) -> set[str]:
    return {m for m in MODELS if f"Running stage 'train@{m}'" in stdout}


def test_repro_trains_three_models_tracked_in_mlflow(project):
    first = run(["dvc", "repro"], project)
    assert train_stages_run(first.stdout) == set(MODELS)
    for m in MODELS:
        assert (project / "models" / m / "model.pt").is_file()
        metrics = json.loads((project / "metrics" / f"{m}.json").read_text())
        assert metrics["epochs"] == 1 and metrics["test"]["loss"] > 0
        header = (project / "plots" / m / "history.csv").read_text().splitlines()[0]
        assert header == "epoch,train_loss,train_recon,train_kl,test_loss,test_recon,test_kl"

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("vaelab")
    runs = client.search_runs([experiment.experiment_id], "tags.model != ''")
    train_runs = {r.data.tags["model"]: r for r in runs if r.data.tags.get("dvc.stage", "").startswith("train@")}
    assert set(train_runs) == set(MODELS)
    for name, r in train_runs.items():
        assert r.info.status == "FINISHED"
        assert r.data.params["model.kind"] == ("ae" if name == "ae" else "vae")
        assert r.data.tags["dvc.stage"] == f"train@{name}" and len(r.data.tags["git.commit"]) == 40
        history = client.get_metric_history(r.info.run_id, "test_loss")
        assert [h.step for h in history] == [1]
        artifacts = {a.path for a in client.list_artifacts(r.info.run_id, "outputs")}
        assert {"outputs/model.pt", "outputs/history.csv", "outputs/metrics.json"} <= artifacts
    assert experiment.artifact_location.startswith(f"file://{project}")

    shown = run(["dvc", "metrics", "show", "--json"], project)
    assert all(f"metrics/{m}.json" in shown.stdout for m in MODELS)

    # A VAE-only change retrains the VAEs, not the autoencoder.
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "first run"], project)
    set_params(project, models__vae_mse__beta=0.5, models__vae_bce__beta=0.5)
    diff = run(["dvc", "params", "diff"], project)
    assert "models.vae_mse.beta" in diff.stdout
    second = run(["dvc", "repro"], project)
    assert train_stages_run(second.stdout) == {"vae_mse", "vae_bce"}
