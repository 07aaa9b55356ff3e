"""A sweep of params.yaml `sweeps`, as DVC experiments: every point of its grid becomes one ``dvc exp run --queue``
of the sweep's stages (DVC's own queue runs them; stages/tuning.py reads them back from ``dvc exp show``).

A sweep entry::

    models: [ae_post, ae]          # the models it trains and evaluates (train@<m>, evaluate@<m>)
    set: {train.epochs: 3}         # params every point sets (dotted keys of params.yaml)
    grid:                          # the product of these lists is the sweep's points
      train.lr: [0.001, 0.01]      #   a dotted key: set as it is
      init: [torch, he]            #   a bare key: set in every model's entry (models.<m>.init)
      width: [128, 256]            #   `width`: every model's hidden widths, one width thrice (the post's shape)

Each point is named ``<sweep>-<NN>``, so the collector finds a sweep's experiments by that prefix.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from typing import Any

from vaelab.core.errors import ConfigError

WIDTH = "width"
HIDDEN_LAYERS = 3  # the post's networks: three hidden layers of one width a side


@dataclass(frozen=True)
class Sweep:
    name: str
    models: list[str]
    fixed: dict[str, Any]
    grid: dict[str, list[Any]]

    def points(self) -> list[dict[str, Any]]:
        """Every point of the grid, as the dotted params it sets (the fixed ones included)."""
        out = []
        for values in itertools.product(*self.grid.values()):
            point = dict(self.fixed)
            for key, value in zip(self.grid, values):
                point.update(_expand(key, value, self.models))
            out.append(point)
        return out

    def targets(self) -> list[str]:
        return [f"{stage}@{m}" for m in self.models for stage in ("train", "evaluate")]


def _expand(key: str, value: Any, models: list[str]) -> dict[str, Any]:
    if "." in key:
        return {key: value}
    if key == WIDTH:
        return {f"models.{m}.hidden": [value] * HIDDEN_LAYERS for m in models}
    return {f"models.{m}.{key}": value for m in models}


def sweep_of(sweeps: dict[str, Any], name: str, models: dict[str, Any]) -> Sweep:
    """The validated sweep ``name`` of params.yaml `sweeps` (a ConfigError names the key and what is expected)."""
    where = f"params.yaml: sweeps.{name}"
    if name not in sweeps:
        raise ConfigError(f"{where}: no such sweep; params.yaml defines {sorted(sweeps)}")
    entry = sweeps[name]
    if not isinstance(entry, dict) or set(entry) - {"models", "set", "grid"} or "grid" not in entry:
        raise ConfigError(f"{where}: expected a mapping with `models`, `grid` and optionally `set`")
    names = entry.get("models") or []
    unknown = [m for m in names if m not in models]
    if not names or unknown:
        raise ConfigError(f"{where}.models = {names!r}: expected a non-empty list of keys of `models` "
                          f"(unknown: {unknown})")
    grid = entry["grid"]
    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{where}.grid: expected a mapping of keys to non-empty lists of values")
    return Sweep(name, list(names), dict(entry.get("set") or {}), dict(grid))


def override(key: str, value: Any) -> str:
    """One ``-S ++key=value`` in DVC's (Hydra's) override grammar (``++``: set, or add where params.yaml lacks the
    key; a misspelt key then fails the experiment's params check, by name): lists and numbers as JSON, strings bare."""
    return f"++{key}={json.dumps(value) if not isinstance(value, str) else value}"


def best_commands(sweep: Sweep, doc: dict[str, Any]) -> list[list[str]]:
    """One ``dvc exp run --queue`` per model of the finished sweep's document ``doc`` (reports/<sweep>.json): its best
    working setting (keys of `train` or of the model's own entry), named ``full-<sweep>-<model>``, at the study's
    epochs: the sweep's fixed params less ``train.epochs``, and that model's stages only."""
    from vaelab.core.config import TrainConfig
    from vaelab.studies.tuning import FULL_PREFIX, best_working

    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    best = {m: b["setting"] for m in doc["models"] if (b := best_working(doc, m))}
    fixed = {k: v for k, v in sweep.fixed.items() if k != "train.epochs"}
    commands = []
    for model, setting in best.items():
        point = {**fixed, **{(f"train.{k}" if k in train_keys else f"models.{model}.{k}"): v for k, v in setting.items()}}
        commands.append(["dvc", "exp", "run", "--queue", "--name", f"{FULL_PREFIX}-{sweep.name}-{model}",
                         *[arg for k, v in point.items() for arg in ("-S", override(k, v))],
                         f"train@{model}", f"evaluate@{model}"])
    return commands


def queue_commands(sweep: Sweep) -> list[list[str]]:
    """The ``dvc exp run --queue`` command of every point of ``sweep``."""
    return [["dvc", "exp", "run", "--queue", "--name", f"{sweep.name}-{i:02d}",
             *[arg for k, v in point.items() for arg in ("-S", override(k, v))], *sweep.targets()]
            for i, point in enumerate(sweep.points())]
