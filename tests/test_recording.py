"""Recording never decides an output, so no DVC stage depends on src/vaelab/tracking (dvc.yaml's header).

Shown both ways: the stages re-run with recording off (``VAELAB_TRACKING=off``) write byte-identical outputs to
the ones they wrote while recording to MLflow, and an edit to the tracking package leaves every stage up to date.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import run
from vaelab import tracking
from vaelab.core.errors import ConfigError


def test_recording_off_touches_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAELAB_TRACKING", "off")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    experiment = tracking.setup("vaelab")
    with tracking.tracked_runs(["m/seed1", "m/seed2"], experiment, [None, None], [{}, {}]) as ids:
        tracking.log_metrics(ids[0], {"loss": 1.0}, step=1)
        assert tracking.logged_steps(ids[0], tracking.EPOCH_KEY) == set()
    assert len(set(ids)) == 2 and list(tmp_path.iterdir()) == []  # no mlflow.db, no mlruns/


def test_recording_switch_refuses_other_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAELAB_TRACKING", "maybe")
    with pytest.raises(ConfigError, match="VAELAB_TRACKING = 'maybe': expected 'on' or 'off'"):
        tracking.setup("vaelab")


def test_an_attempt_resumed_with_recording_on_starts_new_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resumable state written while recording was off names runs that do not exist: no store is asked of them."""
    from vaelab.tracking.runs import _existing

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens: any request would fail
    assert _existing("off:vae/seed1", "0") is None


@pytest.mark.slow
def test_outputs_are_the_same_with_recording_off(pipeline_copy: Path) -> None:
    """train, figures and evaluate of one model re-run with nothing recorded: every output byte-identical (dvc.lock
    and the git-tracked outputs unchanged) to the tiny pipeline's, which recorded every run to MLflow."""
    stages = ["train@vae_bce", "figures@vae_bce", "evaluate@vae_bce"]
    for stage in stages:
        run(["dvc", "repro", "--force", "--single-item", stage], pipeline_copy, VAELAB_TRACKING="off")
    changed = run(["git", "status", "--porcelain"], pipeline_copy).stdout
    assert changed == "", f"re-running {stages} with recording off changed:\n{changed}"
    from mlflow.tracking import MlflowClient  # the copy's store: empty, so the stages recorded nothing
    assert MlflowClient(f"sqlite:///{pipeline_copy / 'mlflow.db'}").get_experiment_by_name("vaelab") is None


@pytest.mark.slow
def test_an_edit_to_tracking_reruns_nothing(pipeline_copy: Path) -> None:
    def stale() -> set[str]:
        return set(json.loads(run(["dvc", "status", "--json"], pipeline_copy).stdout))

    assert stale() == set()
    keys = pipeline_copy / "src" / "vaelab" / "tracking" / "keys.py"
    keys.write_text(keys.read_text() + "\n# an edit to how runs are recorded\n")
    assert stale() == set(), "an edit to src/vaelab/tracking made stages stale"
    # The same check fails where it should: an edit to a measure makes every evaluation stale.
    sharpness = pipeline_copy / "src" / "vaelab" / "measures" / "sharpness.py"
    sharpness.write_text(sharpness.read_text() + "\n# an edit to a measure\n")
    assert {s for s in stale() if s.startswith("evaluate@")} == {"evaluate@ae", "evaluate@vae_mse", "evaluate@vae_bce",
                                                                   "evaluate@vae_new"}
    assert not {s for s in stale() if s.startswith("train@")}
