"""What `dvc plots show` shows: one chart per per-epoch metric over every model's and seed's history (epoch on x),
and no per-file charts besides. Runs the real `dvc plots show --json` on this checkout's committed histories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ALL_MODEL_PLOTS = {"test_loss_per_epoch": "test_loss", "test_mse_per_epoch": "test_mse"}


@pytest.fixture(scope="module")
def shown() -> dict:
    dvc = Path(sys.executable).with_name("dvc")
    done = subprocess.run([str(dvc), "plots", "show", "--json"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr   # no "file type error" or other warning
    return json.loads(done.stdout)["data"]


def _histories() -> set[str]:
    """Every model's and seed's history file that params.yaml asks for, as DVC names them (relative to plots/history)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    return {f"{m}/seed{s}.csv" for m in params["models"] for s in params["seeds"]}


def test_dvc_plots_show_has_only_the_all_model_curves(shown: dict) -> None:
    assert set(shown) == set(ALL_MODEL_PLOTS)   # no chart per CSV, no image one per row


@pytest.mark.parametrize("plot_id, column", sorted(ALL_MODEL_PLOTS.items()))
def test_each_all_model_plot_has_epoch_on_x_and_every_history(shown: dict, plot_id: str, column: str) -> None:
    (chart,) = shown[plot_id]
    spec = chart["content"]
    assert spec["encoding"]["x"]["field"] == "epoch"
    values = spec["data"]["values"]
    missing = _histories() - {v["filename"] for v in values}
    assert not missing, f"dvc.yaml plots {plot_id!r}: add these history files to its y: {sorted(missing)}"
    assert all(column in v for v in values)
    on_disk = {p.relative_to(REPO / "plots" / "history").as_posix() for p in (REPO / "plots" / "history").rglob("*.csv")}
    assert on_disk == _histories()   # the committed histories are exactly params.yaml's models and seeds


def test_every_history_has_the_plotted_columns() -> None:
    for path in (REPO / "plots" / "history").rglob("*.csv"):
        header = path.read_text().splitlines()[0].split(",")
        assert {"epoch", *ALL_MODEL_PLOTS.values()} <= set(header), path
