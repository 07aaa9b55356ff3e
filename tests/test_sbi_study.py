"""The SBI study (vaelab.sbi.study): its checks, its scores on sbibm's real files, the published anchor against the
paper's numbers, its figure and its report section."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vaelab.core.config import SBIConfig
from vaelab.core.errors import ConfigError
from vaelab.report.render import Table, render_markdown
from vaelab.report.sections.cells import Inputs
from vaelab.report.sections.sbi import sbi_blocks
from vaelab.sbi import study
from vaelab.sbi.published import NPE_C2ST_PER_OBSERVATION, npe_c2st
from vaelab.sbi.sbibm_files import download_wheel, fetch_sbibm_files
from vaelab.viz.sbi_figures import coordinate_pairs, pair_plot

TINY = SBIConfig(tasks=["two_moons", "slcp"], estimators=["cvae", "bbvi", "bbvi_flow", "npe"], budgets=[200],
                 epochs=[2], batch_sizes=[50], observations=[1, 2], samples=100)


@pytest.fixture(scope="module")
def sbibm_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sbibm's files, from its wheel on the package index (pip's cache after the first download), checked."""
    root = tmp_path_factory.mktemp("sbibm")
    fetch_sbibm_files(root, wheel=download_wheel(tmp_path_factory.mktemp("wheel")))
    return root


@pytest.mark.parametrize("change, says", [
    ({"estimators": ["cvae", "flow"]}, "sbi.estimators"),
    ({"estimators": []}, "sbi.estimators"),
    ({"epochs": [2, 2]}, "sbi.epochs = [2, 2]: expected one value per budget"),
    ({"batch_sizes": [50, 50]}, "sbi.batch_sizes"),
    ({"samples": 10_001}, "sbi.samples = 10001"),
    ({"tasks": ["two_moons", "lotka_volterra"]}, "unknown SBI task 'lotka_volterra'"),
])
def test_bad_settings_are_named_before_any_work(change: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
        study.check(dataclasses.replace(TINY, **change), "two_moons")


def test_a_task_outside_the_params_is_refused() -> None:
    with pytest.raises(ConfigError, match="sbi.tasks"):
        study.check(TINY, "gaussian_mixture")


def test_the_published_anchor_is_the_papers() -> None:
    """The means over sbibm's ten observations are Lueckmann et al.'s Fig. 2 values the issue quotes."""
    every = list(range(1, 11))
    assert [round(npe_c2st("two_moons", b, every), 3) for b in (1_000, 10_000, 100_000)] == [0.725, 0.606, 0.542]
    assert [round(npe_c2st("slcp", b, every), 3) for b in (1_000, 10_000, 100_000)] == [0.975, 0.901, 0.831]
    assert npe_c2st("two_moons", 200, every) is None
    assert npe_c2st("two_moons", 1_000, [1]) == NPE_C2ST_PER_OBSERVATION["two_moons"][1_000][0]
    assert all(len(v) == 10 and all(0.45 < c <= 1 for c in v) for t in NPE_C2ST_PER_OBSERVATION.values()
               for v in t.values())


def test_coordinate_pairs_show_each_coordinate_before_repeating() -> None:
    assert coordinate_pairs(2) == [(0, 1)]
    assert coordinate_pairs(5) == [(0, 1), (2, 3), (0, 2)]
    assert coordinate_pairs(10) == [(0, 1), (2, 3), (4, 5)]


def test_every_estimator_is_scored_on_real_files_and_a_rerun_is_identical(sbibm_root: Path) -> None:
    """Each estimator at each budget, C2ST per observation against sbibm's reference draws; the document, the pair
    plot and the report section built from it. One call again gives the same draws and scores (same shapes, same
    process: one thread)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        scored = [study.score(*call) for call in study.calls("two_moons", TINY, sbibm_root)]
        again = study.score("two_moons", "cvae", 200, TINY, sbibm_root)
    finally:
        torch.set_num_threads(threads)
    assert sorted((s.estimator, s.budget) for s in scored) == sorted(
        (e, b) for e in TINY.estimators for b in TINY.budgets)
    first = next(s for s in scored if s.estimator == "cvae")
    assert again.c2st == first.c2st and torch.equal(again.draws, first.draws)
    for s in scored:
        assert sorted(s.c2st) == [1, 2] and all(0.0 <= v <= 1.0 for v in s.c2st.values()), s
        assert s.draws.shape == (100, 2) and torch.isfinite(s.draws).all()
        assert s.history and all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in s.history)

    doc = study.document("two_moons", TINY, scored)
    assert list(doc["estimators"]) == ["cvae", "bbvi", "bbvi_flow", "npe"]
    entry = doc["estimators"]["npe"]["200"]
    assert entry["n"] == 2 and entry["low"] <= entry["mean"] <= entry["high"]
    assert entry["mean"] == pytest.approx(sum(entry["c2st"].values()) / 2)
    assert doc["published_npe"]["these_observations"]["1000"] == pytest.approx(npe_c2st("two_moons", 1000, [1, 2]))
    assert all(set(s.seconds) == {"simulate", "train", "sample", "c2st"} and s.seconds["c2st"] > 0 for s in scored)
    assert "seconds" not in str(doc)   # wall time is not reproducible: MLflow's and the log's, never an output's

    figure = pair_plot("two_moons", scored, study.references("two_moons", TINY, sbibm_root))
    assert len(figure.axes) == 4   # four estimators, one pair of coordinates

    blocks = sbi_blocks(Inputs([], {}, {}, {}, {}, [], {}, [], sbi={"two_moons": doc}))
    (table,) = [b for b in blocks if isinstance(b, Table)]
    assert table.header[2:] == ["C2ST, 200 simulations"]
    assert [r[1] for r in table.rows] == ["CVAE", "BBVI, Gaussian mixture", "BBVI, flow", "NPE (sbi)",
                                          "NPE, published by sbibm"]
    assert table.rows[-1][2:] == ["—"]   # sbibm ran no 200 simulations
    text = render_markdown("r", blocks)
    assert "figures/sbi/two_moons/pairs.png" in text and "observations 1 and 2" in text


def test_no_sbi_tasks_means_no_section() -> None:
    assert sbi_blocks(Inputs([], {}, {}, {}, {}, [], {}, [])) == []


@pytest.mark.parametrize("task, change, says", [
    ("lotka_volterra", {}, "sbi.tasks = ['two_moons']: no task 'lotka_volterra'"),
    ("two_moons", {"budgets": [5]}, "sbi.budgets = [5]: expected a non-empty list of distinct integers >= 10"),
])
def test_the_stage_program_refuses_a_bad_task_or_budget_in_one_line(tmp_path: Path, task: str, change: dict,
                                                                      says: str) -> None:
    """As DVC runs it: exit 1, one line naming the key, nothing written, no MLflow store opened."""
    import sys

    import yaml
    from helpers import REPO, run

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sbi"].update(tasks=["two_moons"], **change)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run([sys.executable, str(REPO / "stages" / "sbi_task.py"), "--task", task], tmp_path, check=False,
               PYTHONPATH=str(REPO / "src"))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and says in errors[0] and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
