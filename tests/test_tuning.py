"""The sweeps: a grid becomes the right `dvc exp run --queue` commands, the collector reads DVC's experiments by
the rule of params.yaml `tuning`, and the committed sweep reports' verdicts are recomputed here from their JSON
by an independent implementation (numpy's quantiles over every bootstrap resample)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from vaelab.core.config import TuningConfig
from vaelab.core.errors import ConfigError
from vaelab.pipeline.sweeps import queue_commands, sweep_of
from vaelab.report.tuning import report
from vaelab.studies.tuning import best_working, outcomes, quantile, study

ROOT = Path(__file__).resolve().parents[1]
RULE = TuningConfig()


def test_grid_becomes_queue_commands() -> None:
    sweeps = {"s": {"models": ["a", "b"], "set": {"train.epochs": 3},
                    "grid": {"train.lr": [0.001, 0.01], "width": [64], "init": ["he"]}}}
    commands = queue_commands(sweep_of(sweeps, "s", {"a": {}, "b": {}}))
    assert len(commands) == 2
    first = commands[0]
    assert first[:6] == ["dvc", "exp", "run", "--queue", "--name", "s-00"]
    sets = [first[i + 1] for i, arg in enumerate(first) if arg == "-S"]
    assert sets == ["++train.epochs=3", "++train.lr=0.001", "++models.a.hidden=[64, 64, 64]",
                    "++models.b.hidden=[64, 64, 64]", "++models.a.init=he", "++models.b.init=he"]
    assert first[-4:] == ["train@a", "evaluate@a", "train@b", "evaluate@b"]


@pytest.mark.parametrize("entry, says", [
    ({"models": ["zz"], "grid": {"train.lr": [1]}}, "unknown: ['zz']"),
    ({"models": ["a"], "grid": {"train.lr": []}}, "non-empty lists"),
    ({"models": ["a"], "grid": {}, "oops": 1}, "expected a mapping with"),
])
def test_bad_sweep_is_named(entry: dict, says: str) -> None:
    with pytest.raises(ConfigError, match="sweeps.s") as err:
        sweep_of({"s": entry}, "s", {"a": {}})
    assert says in str(err.value)


def _exp(name: str, lr: float, per_model: dict[str, list[tuple[float, float, float | None]]]) -> dict:
    metrics = {}
    for model, seeds in per_model.items():
        train = {f"seed{i}": {"test": {"mse": mse}} for i, (mse, _, _) in enumerate(seeds)}
        ev = {f"seed{i}": {"latent": {"knn_accuracy": knn, **({} if sat is None else {"saturated_fraction": sat})}}
              for i, (_, knn, sat) in enumerate(seeds)}
        metrics[f"metrics/train/{model}.json"] = {"data": train}
        metrics[f"metrics/eval/{model}.json"] = {"data": ev}
    return {"rev": name, "name": name, "data": {"params": {"params.yaml": {"data": {"train": {"lr": lr}}}},
                                                "metrics": metrics, "timestamp": "2026-12-07T10:00:00"}}


GOOD, DEAD = (30.0, 0.9, 0.0), (52.9, 0.1135, 1.0)


def _exp_show() -> list[dict]:
    """Three settings. The VAE works at all three; the AE collapses on one seed at lr 0.01 and is poor at 0.0001."""
    vae = lambda mse: [(mse, 0.9, None)] * 3  # noqa: E731
    exps = [_exp("s-00", 0.0001, {"vae": vae(31.0), "ae": [(40.0, 0.8, 0.0)] * 3}),
            _exp("s-01", 0.001, {"vae": vae(30.0), "ae": [GOOD] * 3}),
            _exp("s-02", 0.01, {"vae": vae(32.0), "ae": [GOOD, GOOD, DEAD]}),
            _exp("other-00", 0.01, {"vae": vae(99.0), "ae": [GOOD] * 3})]
    base = {"rev": "abc1234", "name": "main", "data": {"params": {"params.yaml": {"data": {"train": {"lr": 0.001}}}}},
            "experiments": [{"executor": {"state": "success"}, "revs": [e]} for e in exps]}
    return [{"rev": "workspace", "data": {}}, base]


def test_outcomes_works_and_verdict_on_a_known_case() -> None:
    outs = outcomes(_exp_show(), "s-", ["vae", "ae"])
    assert {(o.model, o.key) for o in outs} == {(m, f"lr={lr}") for m in ("vae", "ae") for lr in (0.0001, 0.001,
                                                                                                 0.01)}
    doc = study(outs, ["vae"], ["ae"], RULE)
    assert doc["models"]["vae"]["share_error"] == 1.0
    ae = {s["key"]: s["works"]["error"] for s in doc["models"]["ae"]["settings"]}
    assert ae == {"lr=0.0001": False, "lr=0.001": True, "lr=0.01": False}  # 40 > 1.1 × 30; one seed collapsed
    (by_error,) = [c for c in doc["comparisons"] if c["by"] == "error"]
    assert by_error["difference"] == pytest.approx(2 / 3)
    # Every resample without the collapsed seed still fails lr 0.0001 for the AE: the VAE is ahead by >= 1/3.
    assert by_error["low"] > 0 and by_error["verdict"] == "supported"
    assert best_working(doc, "ae")["key"] == "lr=0.001"
    text = report(doc, "s")
    assert "**supported**" in text and "**failed**" in text


def test_quantile_is_numpys_inverted_cdf() -> None:
    values = [0.3, -0.1, 0.0, 0.5, 0.2, 0.2, 1.0]
    for q in (0.0125, 0.025, 0.5, 0.975, 0.9875):
        assert quantile(values, q) == np.quantile(values, q, method="inverted_cdf")


def _independent_verdicts(doc: dict) -> list[str]:
    """The verdicts of ``doc`` recomputed from its per-seed outcomes and rule alone, with numpy."""
    rule = doc["rule"]
    seeds = sorted(next(iter(doc["models"].values()))["settings"][0]["seeds"])

    def shares(model: str, pick: tuple[str, ...], by: str) -> float:
        rows = []
        for s in doc["models"][model]["settings"]:
            vals = [s["seeds"][k] for k in pick]
            dead = any((v["saturated"] is not None and v["saturated"] > rule["saturated"]) or v["knn"] <= rule["knn"]
                       or v["mse"] >= rule["mse"] for v in vals)
            rows.append((dead, np.mean([v["mse"] for v in vals]), np.mean([v["knn"] for v in vals])))
        alive = [r for r in rows if not r[0]]
        if by == "error":
            best = min((r[1] for r in alive), default=np.inf)
            return float(np.mean([not d and m <= (1 + rule["margin"]) * best for d, m, _ in rows]))
        best = max((r[2] for r in alive), default=-np.inf)
        return float(np.mean([not d and k >= best - rule["knn_margin"] for d, _, k in rows]))

    out = []
    for c in doc["comparisons"]:
        diffs = [shares(c["vae"], r, c["by"]) - shares(c["ae"], r, c["by"])
                 for r in itertools.product(seeds, repeat=len(seeds))]
        alpha = 1 - doc["family_level"]
        low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
        eq = rule["equivalence"]
        out.append("supported" if low > 0 else "contradicted" if high < 0
                   else "equivalent" if -eq <= low and high <= eq else "inconclusive")
    return out


@pytest.mark.parametrize("name", ["tuning", "post_ae"])
def test_committed_sweep_verdicts_recompute(name: str) -> None:
    path = ROOT / "reports" / f"{name}.json"
    if not path.exists():
        pytest.fail(f"{path} is missing: run the sweep (reports/{name}.md says how)")
    doc = json.loads(path.read_text())
    assert [c["verdict"] for c in doc["comparisons"]] == _independent_verdicts(doc)
    for model in doc["models"].values():
        assert all(len(s["seeds"]) >= 3 for s in model["settings"])


def test_the_collector_program_writes_both_files_or_neither(tmp_path: Path) -> None:
    """stages/tuning.py on an exp-show document in DVC 3's shape: the report and its JSON from the sweep's
    experiments by params.yaml `tuning`, the VAE told from the AE by its prior; an unknown sweep is one line, exit 1,
    nothing written."""
    import yaml
    from helpers import BIN, run

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sweeps"] = {"s": {"models": ["vae_bce", "ae"], "grid": {"train.lr": [0.0001, 0.001, 0.01]}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shown = _exp_show()
    for exp in shown[1]["experiments"]:
        metrics = exp["revs"][0]["data"]["metrics"]
        for key in list(metrics):
            metrics[key.replace("/vae.json", "/vae_bce.json")] = metrics.pop(key)
    (tmp_path / "show.json").write_text(json.dumps(shown))
    program = [str(BIN / "python"), str(ROOT / "stages" / "tuning.py")]
    args = ["--params", "params.yaml", "--exp-show-json", "show.json", "--out", "out"]
    run([*program, "s", *args], tmp_path, PYTHONPATH=str(ROOT / "src"))
    doc = json.loads((tmp_path / "out" / "s.json").read_text())
    assert [(c["vae"], c["ae"], c["verdict"]) for c in doc["comparisons"]][0] == ("vae_bce", "ae", "supported")
    assert "**supported**" in (tmp_path / "out" / "s.md").read_text()
    bad = run([*program, "nope", *args[:-1], "out2"], tmp_path, check=False, PYTHONPATH=str(ROOT / "src"))
    assert bad.returncode == 1 and "sweeps.nope: no such sweep" in bad.stderr + bad.stdout
    assert not (tmp_path / "out2").exists()


def test_best_settings_are_queued_at_the_study_epochs_and_their_ranking_is_checked() -> None:
    """Each model's best working setting becomes one experiment at the study's epochs (the sweep's other fixed params
    kept, that model's stages only); the check reads those experiments back and says whether the models' ranking
    holds, on a known case where it holds by error and flips by the latent."""
    from vaelab.core.config import TuningConfig as Rule
    from vaelab.pipeline.sweeps import best_commands
    from vaelab.studies.tuning import full_epochs

    doc = study(outcomes(_exp_show(), "s-", ["vae", "ae"]), ["vae"], ["ae"], Rule())
    sweep = sweep_of({"s": {"models": ["vae", "ae"], "set": {"train.epochs": 3, "evaluate.silhouette_size": 2000},
                            "grid": {"train.lr": [0.0001, 0.001, 0.01], "width": [128]}}}, "s", {"vae": {}, "ae": {}})
    commands = best_commands(sweep, doc)
    assert [c[5] for c in commands] == ["full-s-vae", "full-s-ae"]
    assert commands[0][6:] == ["-S", "++evaluate.silhouette_size=2000", "-S", "++train.lr=0.001", "train@vae",
                               "evaluate@vae"]
    full = [_exp("full-s-vae", 0.001, {"vae": [(25.0, 0.80, None)] * 3}),
            _exp("full-s-ae", 0.001, {"ae": [(28.0, 0.95, 0.0)] * 3})]
    shown = _exp_show()
    shown[1]["experiments"] = [{"executor": {"state": "success"}, "revs": [e]} for e in full]
    check = full_epochs(doc, "s", 3, 15, shown)
    assert check["models"]["vae"]["setting"] == "lr=0.001" and check["means"]["full"]["error"]["ae"] == 28.0
    assert check["ranking"]["error"] == {"sweep": ["vae", "ae"], "full": ["vae", "ae"], "apart": [True], "holds": True}
    assert check["ranking"]["latent"]["holds"] is False   # tied at 0.9 after the sweep, the AE ahead at 15 epochs
    text = report({**doc, "full_epochs": check}, "s")
    assert "the ranking **holds**" in text and "the ranking **does not hold**" in text
    # Seeds that spread over each other's range: the order at 15 epochs is a mean's, not established.
    full[0] = _exp("full-s-vae", 0.001, {"vae": [(22.0, 0.99, None), (34.0, 0.80, None), (25.0, 0.96, None)]})
    shown[1]["experiments"] = [{"executor": {"state": "success"}, "revs": [e]} for e in full]
    spread = full_epochs(doc, "s", 3, 15, shown)
    assert spread["ranking"]["error"]["apart"] == [False] and spread["ranking"]["latent"]["apart"] == [False]
    text = report({**doc, "full_epochs": spread}, "s")
    assert "vae ≈ ae at 15: the ranking **holds in the means only" in text
    assert "ae ≈ vae at 15: the ranking **is not established" in text
