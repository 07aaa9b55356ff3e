"""What `dvc plots show` shows: one chart per per-epoch metric over every model's and seed's history (epoch on x,
one line per run from plots/histories.csv), and no per-file charts besides. Runs the real `dvc plots show --json`
on this checkout's committed outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import seeds_of

REPO = Path(__file__).resolve().parents[1]
ALL_MODEL_PLOTS = {"test_loss_per_epoch": "test_loss", "test_mse_per_epoch": "test_mse"}


@pytest.fixture(scope="module")
def shown() -> dict:
    dvc = Path(sys.executable).with_name("dvc")
    done = subprocess.run([str(dvc), "plots", "show", "--json"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr   # no "file type error" or other warning
    return json.loads(done.stdout)["data"]


def _runs() -> set[str]:
    """Every model's and seed's run that params.yaml asks for, as plots/histories.csv names them."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    return {f"{m}/seed{s}" for m in params["models"] for s in seeds_of(params, m)}


def test_dvc_plots_show_has_only_the_all_model_curves(shown: dict) -> None:
    assert set(shown) == set(ALL_MODEL_PLOTS)   # no chart per CSV, no image one per row


@pytest.mark.parametrize("plot_id, column", sorted(ALL_MODEL_PLOTS.items()))
def test_each_all_model_plot_has_epoch_on_x_and_every_run(shown: dict, plot_id: str, column: str) -> None:
    (chart,) = shown[plot_id]
    spec = chart["content"]
    assert spec["encoding"]["x"]["field"] == "epoch"
    # One line per run, coloured by model; `dvc plots diff` tells revisions apart by dash (.dvc/plots/runs.json).
    assert spec["encoding"]["color"]["field"] == "model" and spec["encoding"]["strokeDash"]["field"] == "rev"
    assert {"run", "rev"} <= {d["field"] for d in spec["encoding"]["detail"]}
    values = spec["data"]["values"]
    assert {v["run"] for v in values} == _runs()
    assert all(column in v for v in values)
    epochs = yaml.safe_load((REPO / "params.yaml").read_text())["train"]["epochs"]
    assert len(values) == len(_runs()) * epochs   # every epoch of every run, once


def test_the_plotted_file_holds_every_history_as_written() -> None:
    rows = (REPO / "plots" / "histories.csv").read_text().splitlines()
    assert rows[0] == "run,model,seed,epoch," + ",".join(ALL_MODEL_PLOTS.values())
    for path in (REPO / "plots" / "history").rglob("*.csv"):
        lines = path.read_text().splitlines()
        header = lines[0].split(",")
        assert {"epoch", *ALL_MODEL_PLOTS.values()} <= set(header), path
        model, seed = path.parent.name, path.stem.removeprefix("seed")
        cols = [header.index(c) for c in ("epoch", *ALL_MODEL_PLOTS.values())]
        expected = [",".join([f"{model}/seed{seed}", model, seed, *(line.split(",")[i] for i in cols)]) for line in lines[1:]]
        assert [r for r in rows if r.startswith(f"{model}/seed{seed},")] == expected, path
