"""dvc.yaml's outputs are the paths vaelab.core.layout gives: one layout owns every path."""

from __future__ import annotations

from pathlib import Path

import yaml

from vaelab.core.layout import Layout, stage_outs

REPO = Path(__file__).resolve().parents[1]


def test_dvc_yaml_outs_are_the_layouts() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert stages, "dvc.yaml has no stages"
    for name, stage in stages.items():
        body = stage.get("do", stage)
        outs = [o if isinstance(o, str) else next(iter(o)) for k in ("outs", "metrics", "plots") for o in body.get(k, [])]
        key = "${item}" if "${item}" in body.get("cmd", "") else "${key}"   # a foreach over a list, or a mapping
        assert sorted(outs) == sorted(stage_outs(name, key)), f"dvc.yaml stage {name!r}"


def test_a_staging_folder_mirrors_the_project(tmp_path: Path) -> None:
    project, staged = Layout(tmp_path), Layout(tmp_path / ".train-x")
    assert project.rel(project.checkpoint("vae", 7)) == staged.rel(staged.checkpoint("vae", 7)) == "models/vae/seed7/model.pt"
    assert project.rel(project.resume_state("vae", [1, 2])) == "checkpoints/vae/seed1-2.pt"
    assert project.rel(project.history("vae", 3)) == "plots/history/vae/seed3.csv"
