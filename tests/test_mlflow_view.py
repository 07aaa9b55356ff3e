"""What a user of the MLflow UI finds after `dvc repro`, read back through the MLflow client on the shared tiny
pipeline: one parent run per model with its seeds nested under it, descriptions, metric names grouped by `/`,
every artifact the README promises, logged models named and linked to their metrics and test set, registered
models with a description and aliases, and the report apart in its own experiment."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from helpers import seeds_of

pytestmark = pytest.mark.slow  # reads the shared tiny `dvc repro`


@pytest.fixture(scope="module")
def store(tiny_pipeline: Path) -> tuple[MlflowClient, str, dict]:
    client = MlflowClient(f"sqlite:///{tiny_pipeline / 'mlflow.db'}")
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    return client, client.get_experiment_by_name("vaelab").experiment_id, params


def runs_of(client: MlflowClient, experiment_id: str, model: str) -> tuple[object, dict[str, object]]:
    runs = client.search_runs([experiment_id], f"tags.model = '{model}'")
    (parent,) = [r for r in runs if r.data.tags.get("vaelab.run") == "model"]
    seeds = {r.data.tags["seed"]: r for r in runs if r.data.tags.get("vaelab.run") == "seed"}
    return parent, seeds


def artifacts(client: MlflowClient, run_id: str, folder: str) -> set[str]:
    return {Path(a.path).name for a in client.list_artifacts(run_id, folder)}


def test_each_model_is_a_parent_run_with_its_seeds_nested(store) -> None:
    client, exp, params = store
    for model in params["models"]:
        seeds = [str(s) for s in seeds_of(params, model)]
        parent, children = runs_of(client, exp, model)
        assert parent.info.run_name == model and parent.info.status == "FINISHED"
        assert sorted(children) == sorted(seeds)
        for seed, r in children.items():
            assert r.info.run_name == f"{model}/seed{seed}"
            assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert f"Seed {seed} of model {model}" in r.data.tags["mlflow.note.content"]
        assert {d.dataset.digest for d in parent.inputs.dataset_inputs} == {
            d.dataset.digest for d in children[seeds[0]].inputs.dataset_inputs}  # the Dataset column of its row
        note = parent.data.tags["mlflow.note.content"]
        assert f"**{model}**" in note and "Nearest model in params.yaml" in note


def test_metric_names_are_grouped_and_the_parent_holds_the_mean_over_seeds(store) -> None:
    client, exp, params = store
    for model in params["models"]:
        parent, children = runs_of(client, exp, model)
        for r in children.values():
            keys = set(r.data.metrics)
            assert {"epoch/loss/train", "epoch/loss/test", "eval/reconstruction/mse_per_image"} <= keys
            assert all("/" in k for k in keys), sorted(k for k in keys if "/" not in k)
        for key in ("epoch/loss/test", "eval/reconstruction/mse_per_image"):
            values = [r.data.metrics[key] for r in children.values()]
            assert parent.data.metrics[key] == pytest.approx(sum(values) / len(values), rel=1e-6)
            half = parent.data.metrics["seeds_ci95/" + key]
            assert math.isfinite(half) and half > 0  # two seeds that differ: a real interval
        epochs = params["train"]["epochs"]
        assert [m.step for m in client.get_metric_history(parent.info.run_id, "epoch/loss/test")] == list(range(1, epochs + 1))


def test_every_promised_artifact_is_in_its_run(store, tiny_pipeline: Path, tmp_path: Path) -> None:
    """The README's MLflow section: each seed run holds its checkpoint and history CSV, the first seed's run and
    the parent the figures; each seed's logged model is named after it and lists its eval metrics and test set."""
    client, exp, params = store
    for model in params["models"]:
        first = str(seeds_of(params, model)[0])
        parent, children = runs_of(client, exp, model)
        drawn = {p.name for p in (tiny_pipeline / "reports" / "figures" / model).glob("*.png")}
        assert drawn and artifacts(client, parent.info.run_id, "figures") == drawn
        for seed, r in children.items():
            assert artifacts(client, r.info.run_id, "outputs") == {"model.pt", f"seed{seed}.csv"}
            history = client.download_artifacts(r.info.run_id, f"outputs/seed{seed}.csv", str(tmp_path))
            assert Path(history).read_bytes() == (tiny_pipeline / "plots" / "history" / model / f"seed{seed}.csv").read_bytes()
            assert artifacts(client, r.info.run_id, "figures") == (drawn if seed == first else set())
            contexts = {t.value for d in r.inputs.dataset_inputs for t in d.tags if t.key == "mlflow.data.context"}
            assert contexts == {"training", "testing"}
            (logged,) = client.search_logged_models([exp], filter_string=f"source_run_id = '{r.info.run_id}'")
            assert logged.name == f"{model}-seed{seed}" and logged.model_id == r.data.tags["vaelab.model_id"]
            linked = {m.key: m for m in logged.metrics}
            assert "eval/reconstruction/mse_per_image" in linked
            (test_set,) = [d for d in r.inputs.dataset_inputs if any(t.value == "testing" for t in d.tags)]
            assert linked["eval/reconstruction/mse_per_image"].dataset_digest == test_set.dataset.digest


def test_registered_models_say_what_they_are_and_which_version_to_use(store) -> None:
    client, exp, params = store
    for model in params["models"]:
        _, children = runs_of(client, exp, model)
        registered = client.get_registered_model(f"vaelab-{model}")
        assert f"**{model}**" in registered.description
        assert set(registered.aliases) == {f"seed{s}" for s in seeds_of(params, model)} | {"champion"}
        by_run = {v.run_id: v for v in client.search_model_versions(f"name = 'vaelab-{model}'")}
        losses = {}
        for seed, r in children.items():
            version = by_run[r.info.run_id]
            assert registered.aliases[f"seed{seed}"] == version.version and f"Seed {seed}" in version.description
            losses[version.version] = r.data.metrics["epoch/loss/test"]
        assert registered.aliases["champion"] == min(losses, key=losses.get)


def test_the_report_is_apart_from_the_training_runs(store) -> None:
    client, exp, _ = store
    assert not client.search_runs([exp], "attributes.run_name = 'report'")
    report_exp = client.get_experiment_by_name("vaelab-report")
    (report,) = client.search_runs([report_exp.experiment_id])
    assert {"report.html", "claims.json"} == {a.path for a in client.list_artifacts(report.info.run_id)}
