"""Every path the pipeline reads or writes, in one place: models, resume checkpoints, metrics, plots, figures.

A stage asks a :class:`Layout` for a path instead of spelling it out. The same layout serves the project
(``Layout(root)``) and a stage's staging folder (``Layout(staged)``), which mirrors the project until
:func:`vaelab.pipeline.stage.publish` moves it into place. :func:`stage_outs` lists each DVC stage's outputs from the
same methods; ``tests/test_layout.py`` checks dvc.yaml's ``outs`` against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """The project's files under ``root`` (the project, or a staging folder laid out like it)."""

    root: Path = Path(".")

    # Inputs
    @property
    def data(self) -> Path:
        """MNIST as downloaded (``MNIST/raw``) and the binarised test set (``binarized``)."""
        return self.root / "data"

    @property
    def raw(self) -> Path:
        return self.data / "MNIST" / "raw"

    @property
    def binarized(self) -> Path:
        return self.data / "binarized"

    @property
    def sbibm(self) -> Path:
        """sbibm's published observations and reference posterior samples, checked (stage ``sbibm``)."""
        return self.data / "sbibm"

    @property
    def binarized_test(self) -> Path:
        return self.binarized / "test.npy"

    # Networks
    def model_dir(self, name: str) -> Path:
        """Every seed of model ``name``: ``seed<k>/model.pt``."""
        return self.root / "models" / name

    def seed_dir(self, name: str, seed: int) -> Path:
        return self.model_dir(name) / f"seed{seed}"

    def checkpoint(self, name: str, seed: int) -> Path:
        """Seed ``seed``'s trained model (:func:`vaelab.models.load`)."""
        return self.seed_dir(name, seed) / "model.pt"

    @property
    def judge_dir(self) -> Path:
        return self.model_dir("judge")

    @property
    def judge_checkpoint(self) -> Path:
        return self.judge_dir / "model.pt"

    @property
    def references_dir(self) -> Path:
        """What every evaluation compares against, computed once (stage ``references``)."""
        return self.data / "references"

    @property
    def references(self) -> Path:
        return self.references_dir / "real.pt"

    def resume_state(self, name: str, seeds: list[int]) -> Path:
        """The unfinished training of a stacked group of seeds (not a DVC output: removed once published)."""
        return self.root / "checkpoints" / name / ("seed" + "-".join(map(str, seeds)) + ".pt")

    # Metrics (JSON, kept in git)
    def train_metrics(self, name: str) -> Path:
        return self.root / "metrics" / "train" / f"{name}.json"

    def eval_metrics(self, name: str) -> Path:
        return self.root / "metrics" / "eval" / f"{name}.json"

    @property
    def judge_metrics(self) -> Path:
        return self.root / "metrics" / "judge.json"

    @property
    def inference_metrics(self) -> Path:
        return self.root / "metrics" / "inference.json"

    @property
    def references_metrics(self) -> Path:
        return self.root / "metrics" / "references.json"

    @property
    def baselines_metrics(self) -> Path:
        return self.root / "metrics" / "baselines.json"

    @property
    def collapse_metrics(self) -> Path:
        return self.root / "metrics" / "collapse.json"

    @property
    def quadrants_metrics(self) -> Path:
        return self.root / "metrics" / "quadrants.json"

    @property
    def claims(self) -> Path:
        return self.root / "metrics" / "claims.json"

    def sbi_metrics(self, task: str) -> Path:
        """The SBI study's numbers for one sbibm task (stage ``sbi@<task>``)."""
        return self.root / "metrics" / "sbi" / f"{task}.json"

    # Plots and figures
    def history_dir(self, name: str) -> Path:
        return self.root / "plots" / "history" / name

    def history(self, name: str, seed: int) -> Path:
        """Seed ``seed``'s per-epoch training history (CSV)."""
        return self.history_dir(name) / f"seed{seed}.csv"

    @property
    def all_histories(self) -> Path:
        """Every model's and seed's history in one long CSV (a ``run`` column): what `dvc plots` draws."""
        return self.root / "plots" / "histories.csv"

    def figures(self, name: str) -> Path:
        """A model's figures, or ``inference`` / ``quadrants`` for those stages' figures."""
        return self.root / "reports" / "figures" / name

    def sbi_figures(self, task: str) -> Path:
        """The SBI study's figures of one task."""
        return self.root / "reports" / "figures" / "sbi" / task

    @property
    def report_md(self) -> Path:
        return self.root / "reports" / "report.md"

    def sweep_report(self, name: str) -> Path:
        """The document of sweep ``name`` (stages/tuning.py writes it from DVC's queue; committed to git)."""
        return self.root / "reports" / f"{name}.json"

    @property
    def report_html(self) -> Path:
        return self.root / "reports" / "report.html"

    @property
    def report_figures(self) -> Path:
        """The report's own comparison figures."""
        return self.root / "reports" / "study"

    def rel(self, path: Path) -> str:
        """``path`` relative to the root, with forward slashes (as dvc.yaml and ``publish(replace=...)`` write it)."""
        return path.relative_to(self.root).as_posix()


def stage_outs(stage: str, key: str = "${key}") -> list[str]:
    """The outputs of DVC stage ``stage`` (``key``: the model of a per-model stage), relative to the project."""
    at = Layout(Path("."))
    per_stage = {
        "download": [at.raw],
        "binarize": [at.binarized],
        "baselines": [at.baselines_metrics],
        "judge": [at.judge_dir, at.judge_metrics],
        "references": [at.references_dir, at.references_metrics],
        "collapse": [at.collapse_metrics],
        "train": [at.model_dir(key), at.train_metrics(key), at.history_dir(key)],
        "figures": [at.figures(key)],
        "evaluate": [at.eval_metrics(key)],
        "inference": [at.inference_metrics, at.figures("inference")],
        "quadrants": [at.quadrants_metrics, at.figures("quadrants")],
        "sbibm": [at.sbibm],
        "sbi": [at.sbi_metrics(key), at.sbi_figures(key)],
        "report": [at.report_md, at.report_html, at.claims, at.report_figures, at.all_histories],
    }
    return [at.rel(p) for p in per_stage[stage]]
