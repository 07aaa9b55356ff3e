"""End to end on ONE shared tiny `dvc repro` (the ``tiny_pipeline`` fixture): every model of params.yaml flows through
every stage, every seed is its own MLflow run holding exactly its own figures and eval metrics, a forced re-run
is byte-identical, and a new `models:` entry needs no edit of dvc.yaml or the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import NEW_MODEL, REPO, run, seeds_of, set_params
from mlflow.tracking import MlflowClient

from vaelab.core.files import md5_of_file
from vaelab.studies.claims import VERDICTS
from vaelab.viz.model_figures import model_label

pytestmark = pytest.mark.slow  # every test here reads the shared tiny `dvc repro`: the slow tier


def params_of(project: Path) -> dict:
    return yaml.safe_load((project / "params.yaml").read_text())


def stages_run(stdout: str) -> set[str]:
    return {line.split("'")[1] for line in stdout.splitlines() if line.startswith("Running stage '")}


def training_runs(project: Path) -> dict[tuple[str, str], object]:
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("vaelab")
    runs = client.search_runs([exp.experiment_id], "tags.`dvc.stage` LIKE 'train@%' and tags.`vaelab.run` = 'seed'")
    return {(r.data.tags["model"], r.data.tags["seed"]): r for r in runs}


def test_every_model_and_seed_flows_through_every_stage(tiny_pipeline: Path) -> None:
    params = params_of(tiny_pipeline)
    names = list(params["models"])
    report = (tiny_pipeline / "reports" / "report.md").read_text()
    for m in names:
        seeds = seeds_of(params, m)
        for s in seeds:
            assert (tiny_pipeline / "models" / m / f"seed{s}" / "model.pt").is_file()
            assert (tiny_pipeline / "plots" / "history" / m / f"seed{s}.csv").is_file()
        train = json.loads((tiny_pipeline / "metrics" / "train" / f"{m}.json").read_text())
        evals = json.loads((tiny_pipeline / "metrics" / "eval" / f"{m}.json").read_text())
        assert {f"seed{s}" for s in seeds} <= set(train) and {f"seed{s}" for s in seeds} <= set(evals)
        assert train[f"seed{seeds[0]}"]["test"]["loss"] != train[f"seed{seeds[1]}"]["test"]["loss"]  # seeds differ
        assert evals["mean"]["reconstruction"]["mse_per_image"] > 0
        assert (tiny_pipeline / "reports" / "figures" / m / "reconstructions.png").is_file()
        assert f"| {model_label(m)} " in report or f" {model_label(m)} |" in report
    claims = json.loads((tiny_pipeline / "metrics" / "claims.json").read_text())
    assert len(claims) == len(params["claims"])
    assert all(c["verdict"] in VERDICTS for c in claims)


def test_each_seed_is_one_run_with_exactly_its_own_figures_and_eval_metrics(tiny_pipeline: Path) -> None:
    params = params_of(tiny_pipeline)
    runs = training_runs(tiny_pipeline)
    client = MlflowClient(f"sqlite:///{tiny_pipeline / 'mlflow.db'}")
    assert set(runs) == {(m, str(s)) for m in params["models"] for s in seeds_of(params, m)}
    for (m, s), r in runs.items():
        assert r.info.status == "FINISHED"
        assert r.data.tags["vaelab.checkpoint_md5"] == md5_of_file(tiny_pipeline / "models" / m / f"seed{s}" / "model.pt")
        assert [h.step for h in client.get_metric_history(r.info.run_id, "epoch/loss/test")] == [1]
        evals = [k for k in r.data.metrics if k.startswith("eval/")]
        assert "eval/reconstruction/mse_per_image" in evals
        for key in evals:
            assert len(client.get_metric_history(r.info.run_id, key)) == 1, key
        assert "evaluate.iwae_samples" in r.data.params and "eval/iwae_samples" not in r.data.metrics
        figures = {a.path for a in client.list_artifacts(r.info.run_id, "figures")}
        assert bool(figures) == (s == str(seeds_of(params, m)[0])), (m, s, figures)


def test_repro_leaves_git_clean_and_nothing_to_do(tiny_pipeline: Path) -> None:
    assert run(["git", "status", "--porcelain"], tiny_pipeline).stdout == ""
    status = run(["dvc", "status", "--json"], tiny_pipeline).stdout
    assert json.loads(status) == {}


# Every stage program is forced once: the shared stages, one model's training, the inference and quadrant stages
# and the report (in two halves, so two workers share the work). The other models run the same programs, and
# figures@/evaluate@ are forced, and checked byte-identical through `git status`, by test_team.py's pulled clone.
FORCED = {"upstream": ["download", "binarize", "judge", "train@vae_bce", "sbibm"],
          "downstream": ["inference", "quadrants", "sbi@two_moons", "report"]}


@pytest.mark.parametrize("half", list(FORCED))
def test_forced_rerun_is_byte_identical(pipeline_copy: Path, half: str) -> None:
    def snapshot() -> dict[str, bytes]:
        files = [pipeline_copy / "dvc.lock", *sorted((pipeline_copy / "metrics").rglob("*.json")),
                 *sorted((pipeline_copy / "plots").rglob("*.csv"))]
        return {str(f.relative_to(pipeline_copy)): f.read_bytes() for f in files}

    before = snapshot()
    forced = FORCED[half]
    out = run(["dvc", "repro", "-f", "-s", *forced], pipeline_copy).stdout
    assert stages_run(out) == set(forced)
    after = snapshot()
    assert sorted(after) == sorted(before)
    changed = [k for k in before if before[k] != after[k]]
    assert changed == [], f"changed by a forced re-run: {changed}"
    assert run(["git", "status", "--porcelain"], pipeline_copy).stdout == ""


def test_a_new_models_entry_flows_through_without_editing_dvc_yaml(tiny_pipeline: Path) -> None:
    """The tiny pipeline's scratch copy has one `models:` entry that params.yaml lacks (helpers.NEW_MODEL), added
    before its `dvc repro`: the model is trained, drawn, evaluated and reported, and dvc.yaml is the project's."""
    assert "vae_new" not in params_of(REPO)["models"] and params_of(tiny_pipeline)["models"]["vae_new"] == NEW_MODEL
    assert (tiny_pipeline / "dvc.yaml").read_bytes() == (REPO / "dvc.yaml").read_bytes()
    assert (tiny_pipeline / "reports" / "figures" / "vae_new" / "prior_samples.png").is_file()
    assert "reconstruction" in json.loads((tiny_pipeline / "metrics" / "eval" / "vae_new.json").read_text())["mean"]
    assert "\nvae_new/seed" in (tiny_pipeline / "plots" / "histories.csv").read_text()  # a line in `dvc plots` too
    assert "VAE-NEW" in (tiny_pipeline / "reports" / "report.md").read_text()


def test_another_new_entry_leaves_every_other_models_stages_up_to_date(pipeline_copy: Path) -> None:
    set_params(pipeline_copy, models__vae_more={**NEW_MODEL, "beta": 2.0})
    changed = {c.split(":")[-1] for c in json.loads(run(["dvc", "status", "--json"], pipeline_copy).stdout)}
    # Its own stages, the report and `collapse` (both read the `models` params as a whole: DVC cannot list the
    # params-driven subset `collapse.models`; collapse takes 2 s). `inference` follows once train@vae_more has
    # written models/vae_more: it depends on the models/ folder as a whole.
    assert changed == {"train@vae_more", "figures@vae_more", "evaluate@vae_more", "report", "collapse"}


def test_a_model_change_reruns_only_that_model(pipeline_copy: Path) -> None:
    set_params(pipeline_copy, models__vae_mse__beta=0.5)
    assert "models.vae_mse.beta" in run(["dvc", "params", "diff"], pipeline_copy).stdout
    changed = set(json.loads(run(["dvc", "status", "--json"], pipeline_copy).stdout))
    assert {"train@vae_mse", "figures@vae_mse", "evaluate@vae_mse"} <= {c.split(":")[-1] for c in changed}
    assert not any(c.split(":")[-1].endswith("@ae") or c.endswith("@vae_bce") for c in changed)


def test_quadrant_completion_runs_in_the_tiny_pipeline(tiny_pipeline: Path) -> None:
    m = json.loads((tiny_pipeline / "metrics" / "quadrants.json").read_text())
    assert m["S"] >= 100 and all(m[f"given_{k}"]["cvae_nll"] > 0 for k in (1, 2, 3))
    assert all((tiny_pipeline / "reports" / "figures" / "quadrants" / f"given{k}.png").is_file() for k in (1, 2, 3))
    assert "Structured output: completing a digit" in (tiny_pipeline / "reports" / "report.md").read_text()


def test_the_sbi_study_runs_in_the_tiny_pipeline(tiny_pipeline: Path) -> None:
    """sbi@two_moons: every estimator scored on each observation, its pair plot, its report section, and its MLflow
    parent run with one child per estimator and budget (C2ST per observation as steps)."""
    sbi = params_of(tiny_pipeline)["sbi"]
    m = json.loads((tiny_pipeline / "metrics" / "sbi" / "two_moons.json").read_text())
    assert list(m["estimators"]) == sbi["estimators"] and m["protocol"]["observations"] == sbi["observations"]
    for per_budget in m["estimators"].values():
        assert sorted(per_budget) == sorted(str(b) for b in sbi["budgets"])
        assert all(0 <= v <= 1 for e in per_budget.values() for v in e["c2st"].values())
    assert (tiny_pipeline / "reports" / "figures" / "sbi" / "two_moons" / "pairs.png").is_file()
    assert "Simulation-based inference with a conditional VAE" in (tiny_pipeline / "reports" / "report.md").read_text()
    client = MlflowClient(f"sqlite:///{tiny_pipeline / 'mlflow.db'}")
    exp = client.get_experiment_by_name(params_of(tiny_pipeline)["mlflow"]["experiment"]).experiment_id
    (parent,) = client.search_runs([exp], "attributes.run_name = 'sbi-two_moons'")
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted((c.data.tags["sbi.estimator"], c.data.tags["sbi.budget"]) for c in children) == sorted(
        (e, str(b)) for e in sbi["estimators"] for b in sbi["budgets"])
    for c in children:
        steps = [h.step for h in client.get_metric_history(c.info.run_id, "c2st")]
        assert sorted(steps) == sbi["observations"], c.info.run_name
