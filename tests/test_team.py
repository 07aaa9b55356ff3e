"""Team scale on the real engines: DVC's experiment queue into one MLflow store, a real `mlflow server`,
a DVC remote, and the rate–distortion report read from `dvc exp show --json`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import run, set_params, subprocess_env

from vaelab.ratedistortion import Point, points_from_exp_show, rd_figure, sweeps, table_markdown
from vaelab.tracking import changed_params

QUEUE_TIMEOUT_S = 900
SERVER_TIMEOUT_S = 90


def wait_for_queue(project: Path, names: list[str]) -> str:
    """Poll `dvc queue status` until none of ``names`` is queued or running (bounded)."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], project).stdout
        rows = [line.split() for line in status.splitlines() if any(n in line.split() for n in names)]
        if len(rows) == len(names) and not any(s in row for row in rows for s in ("Queued", "Running")):
            return status
        time.sleep(3)
    pytest.fail(f"queue not finished after {QUEUE_TIMEOUT_S} s:\n{status}")


def test_queued_experiments_record_into_the_projects_mlflow_store(project: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "baseline"], project)
    # A fresh store: the two workers below both find no schema and race to create it.
    (project / "mlflow.db").unlink()
    exps = {"bce-beta4": ("models.vae_bce.beta=4", "train@vae_bce"),
            "mse-z4": ("models.vae_mse.latent_dim=4", "train@vae_mse")}
    for name, (override, stage) in exps.items():
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", override, stage], project)
    run(["dvc", "queue", "start", "-j", "2"], project)
    status = wait_for_queue(project, list(exps))
    for name in exps:
        assert next(line for line in status.splitlines() if name in line.split()).split()[-1] == "Success", \
            run(["dvc", "queue", "logs", name], project, check=False).stdout + status

    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    (tmp_path / "exp_show.json").write_text(json.dumps(shown))  # kept for a look when this fails
    rows = {r["name"]: r["data"] for e in shown[1]["experiments"] for r in e["revs"]}
    assert set(exps) <= set(rows)
    assert rows["bce-beta4"]["params"]["params.yaml"]["data"]["models"]["vae_bce"]["beta"] == 4
    assert rows["mse-z4"]["params"]["params.yaml"]["data"]["models"]["vae_mse"]["latent_dim"] == 4

    # Every run landed in the project's own store (not in the deleted temporary copies) ...
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("vaelab")
    assert experiment.artifact_location == (project / "mlruns").as_uri()
    runs = {r.data.tags.get("dvc.exp_name"): r for r in client.search_runs([experiment.experiment_id])}
    assert set(exps) <= set(runs)
    for name, (override, stage) in exps.items():
        mlrun = runs[name]
        model = stage.split("@")[1]
        assert mlrun.info.status == "FINISHED"
        assert mlrun.data.tags["model"] == model and mlrun.data.tags["dvc.changed_params"] == override
        assert mlrun.data.tags["dvc.baseline_rev"] == shown[1]["rev"]
        # ... with its metrics, which are the experiment's own DVC metrics ...
        dvc_metrics = rows[name]["metrics"][f"metrics/{model}.json"]["data"]
        assert mlrun.data.metrics["test_loss"] == pytest.approx(dvc_metrics["test"]["loss"])
        assert [m.step for m in client.get_metric_history(mlrun.info.run_id, "test_kl")] == [1]
        # ... and readable artifacts.
        local = client.download_artifacts(mlrun.info.run_id, "outputs/metrics.json", str(tmp_path / name))
        assert json.loads(Path(local).read_text()) == dvc_metrics
    assert not list((project / ".dvc" / "tmp").rglob("mlflow.db"))

    # The rate–distortion parser reads this real `dvc exp show --json`: baseline + one point per sweep.
    points = {(p.model, p.beta, p.latent_dim): p for p in points_from_exp_show(shown)}
    assert set(points) == {("vae_bce", 1.0, 2), ("vae_bce", 4.0, 2), ("vae_mse", 1.0, 2), ("vae_mse", 1.0, 4)}
    bce4 = rows["bce-beta4"]["metrics"]["metrics/vae_bce.json"]["data"]["test"]
    assert (points[("vae_bce", 4.0, 2)].rate_nats, points[("vae_bce", 4.0, 2)].distortion) == (bce4["kl"], bce4["recon"])


def test_changed_params_lists_only_what_differs() -> None:
    base = {"seed": 1, "models": {"a": {"beta": 1.0, "hidden": [4]}}}
    assert changed_params(base, base) == {}
    assert changed_params(base, {"seed": 1, "models": {"a": {"beta": 0.5, "hidden": [4]}}}) == {"models.a.beta": 0.5}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(base: str, endpoint: str, body: dict | None = None, **query: str) -> bytes:
    """One call of the server's REST API: POST ``body`` as JSON if given, else GET with ``query``."""
    url = f"{base}{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def api_json(base: str, endpoint: str, body: dict | None = None, **query: str) -> dict:
    return json.loads(api(base, endpoint, body, **query))


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A real `mlflow server` on 127.0.0.1 with its own SQLite backend and artifact folder."""
    port, artifacts = free_port(), tmp_path / "artifacts"
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        ["mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'srv.db'}", "--artifacts-destination", str(artifacts)],
        cwd=tmp_path, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not come up:\n{(tmp_path / 'server.log').read_text()}")
                time.sleep(0.5)
        yield base, artifacts
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its gunicorn/uvicorn workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


def test_training_records_into_a_real_tracking_server(project: Path, mlflow_server) -> None:
    base, artifacts = mlflow_server
    set_params(project, train__epochs=2)
    run(["dvc", "repro", "download"], project)
    run(["python", "stages/train.py", "--model", "ae"], project, PYTHONPATH="src", MLFLOW_TRACKING_URI=base)
    assert not (project / "mlflow.db").exists()  # nothing went to the local default store

    exp_id = api_json(base, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="vaelab")["experiment"]["experiment_id"]
    found = api_json(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id]})["runs"]
    assert len(found) == 1
    info = found[0]["info"]
    tags = {t["key"]: t["value"] for t in found[0]["data"]["tags"]}
    assert info["status"] == "FINISHED" and tags["model"] == "ae" and info["run_name"] == "ae"

    history = api_json(base, "/api/2.0/mlflow/metrics/get-history", run_id=info["run_id"], metric_key="test_loss")
    saved = json.loads((project / "metrics" / "ae.json").read_text())
    assert [m["step"] for m in history["metrics"]] == [1, 2]
    assert history["metrics"][-1]["value"] == pytest.approx(saved["test"]["loss"])

    listed = api_json(base, "/api/2.0/mlflow/artifacts/list", run_id=info["run_id"], path="outputs")
    assert {"outputs/model.pt", "outputs/metrics.json", "outputs/history.csv"} <= {f["path"] for f in listed["files"]}
    assert info["artifact_uri"].startswith("mlflow-artifacts:/")
    where = info["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
    body = api(base, f"/api/2.0/mlflow-artifacts/artifacts/{where}/outputs/metrics.json")
    assert json.loads(body) == saved
    assert (artifacts / where / "outputs" / "model.pt").exists()  # the server stored it, not the client


def test_pushed_results_are_pulled_by_a_fresh_clone_without_retraining(project: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], project)
    run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "results and remote"], project)
    run(["dvc", "push"], project)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    status = run(["dvc", "status"], clone).stdout
    assert "up to date" in status, status
    repro = run(["dvc", "repro"], clone).stdout
    assert "Running stage" not in repro and "up to date" in repro, repro
    assert not (clone / "mlflow.db").exists()  # no stage trained (a training stage would have created it)

    # Every output dvc.lock declares is in the clone with the recorded content.
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    outs = [o for stage in lock["stages"].values() for o in stage.get("outs", [])]
    assert any(o["path"].startswith("models/") for o in outs) and any(o["path"].startswith("metrics/") for o in outs)
    for out in outs:
        assert files_of(clone / out["path"]) == files_of(project / out["path"]), out["path"]


def files_of(path: Path) -> dict[str, bytes]:
    """The content of a file, or of every file under a folder, by relative name."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def exp_show_of(base: dict, exps: dict[str, dict]) -> list[dict]:
    """A `dvc exp show --json` document in DVC 3's shape."""
    def data(params: dict, metrics: dict) -> dict:
        return {"params": {"params.yaml": {"data": params}},
                "metrics": {f"metrics/{m}.json": {"data": {"test": t}} for m, t in metrics.items()}}
    return [{"rev": "workspace", "name": None, "data": data(*base), "experiments": None},
            {"rev": "a" * 40, "name": "main", "data": data(*base),
             "experiments": [{"revs": [{"rev": f"{i}" * 40, "name": n, "data": data(*v)}],
                              "executor": {"state": "success"} if n != "failed" else {"state": "failed"}}
                             for i, (n, v) in enumerate(exps.items())]}]


def params_with(beta: float = 1.0, latent: int = 2, epochs: int = 4) -> dict:
    vae = {"kind": "vae", "likelihood": "bernoulli", "latent_dim": 2, "hidden": [8], "beta": 1.0}
    return {"seed": 1, "train": {"epochs": epochs},
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
    bce = sweeps(points, "vae_bce")
    assert [p.beta for p in bce["beta"]] == [1.0, 4.0] and [p.latent_dim for p in bce["latent_dim"]] == [2, 8]
    assert next(p for p in points if p.exp == "b4").rate_bits == pytest.approx(2.0 / 0.6931471805599453)
    table = table_markdown(points)
    assert "| vae_bce | 4 | 2 | 2.00 | 2.89 | 190.00 | b4 |" in table


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
    assert (tmp_path / "out" / "figures" / "rd.png").read_bytes()[:4] == b"\x89PNG"

    (tmp_path / "bad.json").write_text("[]")
    bad = run(["python", str(repo / "stages/rd.py"), "--exp-show-json", "bad.json", "--out-dir", "bad"], tmp_path,
              check=False, PYTHONPATH=str(repo / "src"))
    assert bad.returncode != 0 and "no baseline commit" in bad.stderr
    assert not (tmp_path / "bad").exists()
