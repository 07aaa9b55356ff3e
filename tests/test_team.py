"""Team scale on the real engines: DVC's experiment queue into one MLflow store, a real `mlflow server`,
a DVC remote, and the rate–distortion report read from `dvc exp show --json`."""

from __future__ import annotations

import hashlib
import json
import re
import time
from types import SimpleNamespace
from pathlib import Path

import pytest
import yaml
from helpers import run

from vaelab.core.config import ClaimSpec
from vaelab.core.errors import ReportError
from vaelab.report.rd import matched_beta
from vaelab.report.stability import document as stability_document
from vaelab.report.stability import report as stability_report
from vaelab.studies.sweeps import Point, points_from_exp_show, rd_curves, table_markdown
from vaelab.tracking import changed_params
from vaelab.viz.charts import rd_figure

QUEUE_TIMEOUT_S = 900


def wait_for_queue(project: Path, names: list[str]) -> str:
    """Wait (bounded) until none of ``names`` is queued or running; return `dvc queue status`.

    `dvc queue status` costs a second of CPU, which the experiments need: between its calls (every 15 s, to
    notice a failure) the cheap sign is git's, a finished experiment's ref under refs/exps.
    """
    deadline, asked = time.monotonic() + QUEUE_TIMEOUT_S, float("-inf")
    status = ""
    while time.monotonic() < deadline:
        refs = run(["git", "for-each-ref", "--format=%(refname:lstrip=-1)", "refs/exps"], project).stdout.split()
        if set(names) <= set(refs) or time.monotonic() - asked >= 15:
            asked, status = time.monotonic(), run(["dvc", "queue", "status"], project).stdout
            rows = [line.split() for line in status.splitlines() if any(n in line.split() for n in names)]
            if len(rows) == len(names) and not any(s in row for row in rows for s in ("Queued", "Running")):
                return status
        time.sleep(1)
    pytest.fail(f"queue not finished after {QUEUE_TIMEOUT_S} s:\n{status}")


def queue_and_wait(project: Path, exps: dict[str, tuple[str, ...]], jobs: int, **env: str) -> list[dict]:
    """Queue DVC experiments (name -> `dvc exp run` args), run them with ``jobs`` workers, return `exp show`."""
    for name, args in exps.items():
        run(["dvc", "exp", "run", "--queue", "-n", name, *args], project, **env)
    run(["dvc", "queue", "start", "-j", str(jobs)], project, **env)
    status = wait_for_queue(project, list(exps))
    for name in exps:
        assert next(line for line in status.splitlines() if name in line.split()).split()[-1] == "Success", \
            run(["dvc", "queue", "logs", name], project, check=False).stdout + status
    return json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)


@pytest.mark.slow
def test_an_experiment_in_a_temporary_copy_records_into_the_projects_store(pipeline_copy: Path) -> None:
    """`dvc exp run --temp` runs in a copy under .dvc/tmp, as a queued experiment does: its runs land in the
    project's own store (DVC_ROOT), with artifacts under the project, not in the deleted copy. Three queued
    experiments at once, on a tracking server, are tests/test_team_postgres.py's."""
    from mlflow.tracking import MlflowClient

    project = pipeline_copy
    run(["dvc", "exp", "run", "--temp", "-n", "bce-beta2", "-S", "models.vae_bce.beta=2", "train@vae_bce"], project)
    assert not list((project / ".dvc" / "tmp").rglob("mlflow.db"))
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("vaelab")
    assert experiment.artifact_location == (project / "mlruns").as_uri()
    runs = client.search_runs([experiment.experiment_id], "tags.`dvc.exp_name` = 'bce-beta2' and tags.`vaelab.run` = 'seed'")
    seeds = yaml.safe_load((project / "params.yaml").read_text())["seeds"]
    assert sorted(r.data.tags["seed"] for r in runs) == sorted(str(s) for s in seeds)
    for r in runs:
        assert r.info.status == "FINISHED" and r.data.tags["dvc.changed_params"] == "models.vae_bce.beta=2"
        assert r.info.artifact_uri.startswith((project / "mlruns").as_uri())
        assert "outputs" in {a.path for a in client.list_artifacts(r.info.run_id)}
        # The experiment's models are logged, not registered: the registry's versions and aliases stay the study's.
        (logged,) = client.search_logged_models([experiment.experiment_id],
                                                filter_string=f"source_run_id = '{r.info.run_id}'")
        assert logged.name == f"vae_bce-seed{r.data.tags['seed']}"
    assert not [v for v in client.search_model_versions("name = 'vaelab-vae_bce'") if v.tags.get("dvc.exp_name")]


def test_changed_params_lists_only_what_differs() -> None:
    base = {"seed": 1, "models": {"a": {"beta": 1.0, "hidden": [4]}}}
    assert changed_params(base, base) == {}
    assert changed_params(base, {"seed": 1, "models": {"a": {"beta": 0.5, "hidden": [4]}}}) == {"models.a.beta": 0.5}


@pytest.mark.slow
def test_pushed_results_are_pulled_by_a_fresh_clone_without_retraining(pipeline_copy: Path, tmp_path: Path) -> None:
    project = pipeline_copy
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], project)
    run(["git", "commit", "-qam", "remote"], project)
    run(["dvc", "push"], project)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    status = run(["dvc", "status"], clone).stdout
    assert "up to date" in status, status
    repro = run(["dvc", "repro"], clone).stdout
    assert "Running stage" not in repro and "up to date" in repro, repro
    assert not (clone / "mlflow.db").exists()  # no stage ran (a stage would have opened the store)

    # Every output dvc.lock declares is in the clone with the recorded content.
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    outs = [o for stage in lock["stages"].values() for o in stage.get("outs", [])]
    assert any(o["path"].startswith("models/") for o in outs) and any(o["path"].startswith("metrics/") for o in outs)
    for out in outs:
        assert files_of(clone / out["path"]) == files_of(project / out["path"]), out["path"]

    # A teammate with an empty local MLflow store re-draws and re-evaluates the pulled models: a new run per
    # seed, linked to the checkpoint by its md5, never a failure and never someone else's run.
    from mlflow.tracking import MlflowClient

    run(["dvc", "repro", "-f", "-s", "figures@vae_bce", "evaluate@vae_bce"], clone)
    client = MlflowClient(f"sqlite:///{clone / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("vaelab").experiment_id])
    seeds = yaml.safe_load((clone / "params.yaml").read_text())["seeds"]
    assert sorted(r.data.tags["seed"] for r in runs) == sorted(str(s) for s in seeds)
    for r in runs:
        md5 = hashlib.md5((clone / "models" / "vae_bce" / f"seed{r.data.tags['seed']}" / "model.pt").read_bytes()).hexdigest()
        assert r.data.tags["vaelab.checkpoint_md5"] == md5 and r.data.tags["vaelab.lineage"] == "checkpoint-only"
        assert len(client.get_metric_history(r.info.run_id, "eval/reconstruction/mse_per_image")) == 1
    # The forced figures@ and evaluate@ wrote byte-identical outputs: figures, metrics and dvc.lock are in git.
    assert run(["git", "status", "--porcelain"], clone).stdout == ""


def files_of(path: Path) -> dict[str, bytes]:
    """The content of a file, or of every file under a folder, by relative name."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def exp_show_of(base: dict, exps: dict[str, dict]) -> list[dict]:
    """A `dvc exp show --json` document in DVC 3's shape."""
    def data(params: dict, metrics: dict) -> dict:
        return {"params": {"params.yaml": {"data": params}},
                "metrics": {f"metrics/train/{m}.json": {"data": {"epochs": 4, "seed1": {"test": t}}}
                            for m, t in metrics.items()}}
    return [{"rev": "workspace", "name": None, "data": data(*base), "experiments": None},
            {"rev": "a" * 40, "name": "main", "data": data(*base),
             "experiments": [{"revs": [{"rev": f"{i}" * 40, "name": n, "data": data(*v)}],
                              "executor": {"state": "success"} if n != "failed" else {"state": "failed"}}
                             for i, (n, v) in enumerate(exps.items())]}]


def params_with(beta: float = 1.0, latent: int = 2, epochs: int = 4) -> dict:
    vae = {"kind": "vae", "likelihood": {"name": "bernoulli"}, "latent_dim": 2, "hidden": [8], "beta": 1.0}
    return {"seeds": [1], "train": {"epochs": epochs},
            "models": {"vae_bce": {**vae, "beta": beta, "latent_dim": latent}, "vae_mse": dict(vae)}}


def test_rate_distortion_points_from_exp_show() -> None:
    t = lambda kl, recon: {"loss": kl + recon, "kl": kl, "recon": recon}  # noqa: E731
    base = (params_with(), {"vae_bce": t(5.0, 150.0), "vae_mse": t(4.0, 20.0)})
    doc = exp_show_of(base, {
        "b4": (params_with(beta=4), {"vae_bce": t(2.0, 190.0), "vae_mse": t(4.0, 20.0)}),
        "z8": (params_with(latent=8), {"vae_bce": t(20.0, 90.0), "vae_mse": t(4.0, 20.0)}),
        "both": (params_with(beta=4, latent=8), {"vae_bce": t(9.0, 9.0), "vae_mse": t(4.0, 20.0)}),
        "longer": (params_with(epochs=9), {"vae_bce": t(9.0, 9.0), "vae_mse": t(9.0, 9.0)}),
        "failed": (params_with(beta=2), {"vae_bce": t(9.0, 9.0), "vae_mse": t(4.0, 20.0)}),
    })
    points = points_from_exp_show(doc)
    # Baseline once per model, the beta and latent points; not the two-factor, other-epochs or failed rows.
    assert {(p.model, p.beta, p.latent_dim, p.exp) for p in points} == {
        ("vae_bce", 1.0, 2, "main (baseline)"), ("vae_bce", 4.0, 2, "b4"), ("vae_bce", 1.0, 8, "z8"),
        ("vae_mse", 1.0, 2, "main (baseline)")}
    bce = rd_curves(points, "vae_bce")
    assert [p.beta for p in bce["beta"]] == [1.0, 4.0] and [p.latent_dim for p in bce["latent_dim"]] == [2, 8]
    assert next(p for p in points if p.exp == "b4").rate_bits == pytest.approx(2.0 / 0.6931471805599453)
    table = table_markdown(points)
    assert "| vae_bce | 4 | 2 | 2.00 | 2.89 | 190.00 | b4 |" in table


def test_matched_beta_interpolates_the_rate_in_log_beta_between_the_bracketing_points() -> None:
    mse = [Point("vae_mse", b, 2, r, 20.0, f"b{b}") for b, r in ((0.25, 6.0), (0.5, 5.0), (1.0, 4.0), (2.0, 2.0))]
    extra = [Point("vae_mse", 1.0, 8, 5.5, 15.0, "z8")]   # another latent size: not on the beta curve
    m = matched_beta([*mse, *extra, Point("vae_bce", 1.0, 2, 5.5, 130.0, "main")], "vae_mse", "vae_bce")
    # Halfway in rate between beta 0.25 and 0.5 is halfway in log beta: sqrt(0.25 * 0.5).
    assert m is not None and (m.below.beta, m.above.beta) == (0.25, 0.5)
    assert m.beta == pytest.approx((0.25 * 0.5) ** 0.5) and m.rate_nats == 5.5
    assert matched_beta([*mse, Point("vae_bce", 1.0, 2, 9.0, 130.0, "main")], "vae_mse", "vae_bce") is None
    assert matched_beta(mse, "vae_mse", "vae_bce") is None   # no target point


def test_the_matched_gaussian_vae_trains_at_the_beta_that_reports_rd_md_found() -> None:
    # The sharpness claims' comparator at equal rate: its beta is the sweep's, to two significant figures.
    repo = Path(__file__).resolve().parents[1]
    found = re.search(r"\*\*β ≈ ([0-9.]+)\*\*", (repo / "reports" / "rd.md").read_text())
    assert found, "reports/rd.md has no matched beta: re-run the sweep and stages/rd.py (README 'Sweeps')"
    beta = yaml.safe_load((repo / "params.yaml").read_text())["models"]["vae_mse_matched"]["beta"]
    assert beta == float(f"{float(found.group(1)):.2g}")


def test_rate_distortion_figure_has_a_panel_per_model_and_labelled_points() -> None:
    points = [Point("vae_bce", b, 2, 8 / b, 140 + 10 * b, f"b{b}") for b in (0.5, 1.0, 4.0)]
    points += [Point("vae_bce", 1.0, d, 4 * d, 150 / d, f"z{d}") for d in (4, 8)]
    points += [Point("vae_mse", 1.0, 2, 3.0, 25.0, "main")]
    fig = rd_figure(points)
    bce, mse = fig.axes[0], fig.axes[1]
    assert bce.get_title() == "vae_bce" and mse.get_title() == "vae_mse"
    assert [len(line.get_xdata()) for line in bce.get_lines()] == [3, 3]  # beta sweep, latent sweep (with d=2)
    labels = {t.get_text() for t in bce.texts}
    assert {"β=0.5", "β=1", "β=4", "d=2", "d=4", "d=8"} <= labels
    with pytest.raises(ValueError, match="no rate"):
        rd_figure([])


def test_rd_script_writes_report_and_rejects_bad_input(tmp_path: Path) -> None:
    t = {"loss": 155.0, "kl": 5.0, "recon": 150.0}
    doc = exp_show_of((params_with(), {"vae_bce": t, "vae_mse": t}),
                      {"b4": (params_with(beta=4), {"vae_bce": {**t, "kl": 2.0}, "vae_mse": t})})
    (tmp_path / "show.json").write_text(json.dumps(doc))
    repo = Path(__file__).resolve().parents[1]
    run(["python", str(repo / "stages/rd.py"), "--exp-show-json", "show.json", "--out-dir", "out"], tmp_path,
        PYTHONPATH=str(repo / "src"))
    md = (tmp_path / "out" / "rd.md").read_text()
    assert "| vae_bce | 4 | 2 | 2.00 |" in md and "dvc exp run --queue" in md
    assert "no matched β" in md   # vae_mse has no beta sweep here
    assert (tmp_path / "out" / "figures" / "rd.png").read_bytes()[:4] == b"\x89PNG"

    (tmp_path / "bad.json").write_text("[]")
    bad = run(["python", str(repo / "stages/rd.py"), "--exp-show-json", "bad.json", "--out-dir", "bad"], tmp_path,
              check=False, PYTHONPATH=str(repo / "src"))
    assert bad.returncode != 0 and "no baseline commit" in bad.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_the_sweep_reports_read_what_a_real_queue_leaves_in_exp_show(pipeline_copy: Path) -> None:
    """`stages/tuning.py` and `stages/rd.py` on the `dvc exp show --json` of a real queued sweep, not a hand-built
    document: a two-point grid over two models (stages/sweep.py queues it) and one rate–distortion point. Each
    report finds exactly its own experiments, with every seed's numbers."""
    import sys

    from helpers import REPO

    project, env = pipeline_copy, {"PYTHONPATH": str(REPO / "src")}
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["sweeps"]["mini"] = {"models": ["ae", "vae_bce"], "set": {"evaluate.groups": ["reconstruction", "latent"]},
                                "grid": {"train.lr": [0.001, 0.01]}}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "-qam", "a two-point sweep"], project)
    run([sys.executable, str(REPO / "stages" / "sweep.py"), "mini"], project, **env)
    run(["dvc", "exp", "run", "--queue", "-n", "bce-beta2", "-S", "models.vae_bce.beta=2", "train@vae_bce"], project)
    run(["dvc", "queue", "start", "-j", "1"], project)
    names = ["mini-00", "mini-01", "bce-beta2"]
    status = wait_for_queue(project, names)
    for name in names:
        assert next(line for line in status.splitlines() if name in line.split()).split()[-1] == "Success", status

    run([sys.executable, str(REPO / "stages" / "tuning.py"), "mini"], project, **env)
    doc = json.loads((project / "reports" / "mini.json").read_text())
    seeds = sorted(f"seed{s}" for s in params["seeds"])
    assert sorted(doc["models"]) == ["ae", "vae_bce"]
    for model, entry in doc["models"].items():
        assert sorted((s["setting"]["lr"], s["exp"]) for s in entry["settings"]) == [(0.001, "mini-00"), (0.01, "mini-01")]
        for setting in entry["settings"]:
            assert sorted(setting["seeds"]) == seeds, (model, setting)
            assert all(v["mse"] > 0 and 0 <= v["knn"] <= 1 for v in setting["seeds"].values()), (model, setting)
    assert "bce-beta2" not in json.dumps(doc)   # not the sweep's: another experiment in the same queue
    assert "mini-01" in (project / "reports" / "mini.md").read_text()

    run([sys.executable, str(REPO / "stages" / "rd.py")], project, **env)
    rows = [r.strip("| ").split(" | ") for r in (project / "reports" / "rd.md").read_text().splitlines()
            if r.startswith("| vae_")]
    bce = {(float(r[1]), int(r[2])): r[-1] for r in rows if r[0] == "vae_bce"}
    assert sorted(bce) == [(1.0, 2), (2.0, 2)] and bce[(2.0, 2)] == "bce-beta2", rows   # the lr sweep: another key
    assert bce[(1.0, 2)].endswith("(baseline)"), rows
    assert all(float(r[3]) > 0 for r in rows), rows


def exp_show_of_evals(base: dict[str, dict[int, float]], exps: dict[str, dict[str, dict[int, float]]]) -> list[dict]:
    """A `dvc exp show --json` document whose rows hold metrics/eval/<m>.json: ``{model: {seed: knn accuracy}}``."""
    def data(evals: dict) -> dict:
        return {"params": {"params.yaml": {"data": {}}},
                "metrics": {f"metrics/eval/{m}.json": {"data": {f"seed{s}": {"latent": {"knn_accuracy": v}}
                                                                 for s, v in seeds.items()}}
                            for m, seeds in evals.items()}}
    return [{"rev": "a" * 40, "name": "main", "data": data(base),
             "experiments": [{"revs": [{"rev": f"{i}" * 40, "name": n, "data": data(e)}],
                              "executor": {"state": "success"}} for i, (n, e) in enumerate(exps.items())]}]


def test_the_claims_on_a_second_seed_set_flag_a_verdict_that_flips() -> None:
    spec = ClaimSpec("ordered", "latent.knn_accuracy", "higher", "vae", "ae", margin=0.01)
    params = SimpleNamespace(claims=[spec], models={"vae": {}, "ae": {}})
    first = {"vae": {1: 0.80, 2: 0.81, 3: 0.79, 4: 0.80}, "ae": {1: 0.50, 2: 0.52, 3: 0.49, 4: 0.51}}
    flipped = {"vae": {5: 0.50, 6: 0.51, 7: 0.49, 8: 0.50}, "ae": {5: 0.80, 6: 0.80, 7: 0.81, 8: 0.79}}
    doc = stability_document(params, "seeds2", exp_show_of_evals(first, {"seeds2-00": flipped}))
    (row,) = doc["claims"]
    assert doc["experiment"] == "seeds2-00"
    assert (row["first"]["verdict"], row["second"]["verdict"], row["stable"]) == ("supported", "contradicted", False)
    assert row["first"]["seeds"] == [1, 2, 3, 4] and row["second"]["seeds"] == [5, 6, 7, 8]
    assert "| ordered | supported [" in stability_report(doc, "seeds2") and "| **no** |" in stability_report(doc, "seeds2")
    same = {"vae": {5: 0.79, 6: 0.80, 7: 0.81, 8: 0.80}, "ae": {5: 0.50, 6: 0.51, 7: 0.50, 8: 0.52}}
    assert stability_document(params, "seeds2", exp_show_of_evals(first, {"seeds2-00": same}))["claims"][0]["stable"]
    # Seeds shared by the two sets, or no experiment at all: a clear error, not a verdict.
    with pytest.raises(ReportError, match=r"share seeds \[4\]"):
        stability_document(params, "seeds2", exp_show_of_evals(first, {"seeds2-00": {
            m: {**v, 4: 0.6} for m, v in same.items()}}))
    with pytest.raises(ReportError, match="no finished experiment named seeds2-"):
        stability_document(params, "seeds2", exp_show_of_evals(first, {"other-00": same}))


def test_stability_script_names_the_missing_experiment(tmp_path: Path) -> None:
    (tmp_path / "show.json").write_text(json.dumps(exp_show_of_evals({"ae": {1: 0.5}}, {})))
    repo = Path(__file__).resolve().parents[1]
    proc = run(["python", str(repo / "stages/stability.py"), "--params", str(repo / "params.yaml"), "--exp-show-json",
                "show.json", "--out", "out"], tmp_path, check=False, PYTHONPATH=str(repo / "src"))
    assert proc.returncode != 0 and "no finished experiment named seeds2-" in proc.stderr
    assert not (tmp_path / "out").exists()
