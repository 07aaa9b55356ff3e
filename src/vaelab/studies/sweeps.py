"""What the queued sweeps found, read from ``dvc exp show --json`` (pure functions; stages/rd.py and
stages/tuning.py are the I/O around them).

Rate–distortion: a VAE's test KL is its rate, its reconstruction error its distortion.
:func:`points_from_exp_show` turns the experiments into one :class:`Point` per (model, beta, latent size) of a
one-factor sweep around the baseline commit; :func:`table_markdown` renders them (the figure is
:func:`vaelab.viz.charts.rd_figure`).

Tuning: :mod:`vaelab.studies.tuning` reads a sweep's experiments through :func:`exp_rows` and :func:`exp_params`.

Distortion is the model's own test reconstruction term (``test.recon`` of ``metrics/train/<m>.json``,
averaged over seeds):
nats of binary cross-entropy for ``vae_bce``, half the summed squared error for ``vae_mse``. The two
are in different units, so the figure has one panel per model.
"""

from __future__ import annotations

import math
from datetime import datetime
from dataclasses import dataclass
from typing import Any

from vaelab.core.config import flatten

SWEPT = ("beta", "latent_dim")
NATS_PER_BIT = math.log(2.0)


@dataclass(frozen=True)
class Point:
    model: str
    beta: float
    latent_dim: int
    rate_nats: float       # test KL(q(z|x) || p(z)) per image
    distortion: float      # test reconstruction term per image
    exp: str               # the `dvc exp show` row it was read from (the baseline: "<branch> (baseline)")

    @property
    def rate_bits(self) -> float:
        return self.rate_nats / NATS_PER_BIT


def exp_rows(exp_show: list[dict]) -> tuple[dict, list[tuple[str, dict]]]:
    """The baseline commit's data and the (name, data) of its successful experiments."""
    commits = [b for b in exp_show if b.get("rev") != "workspace" and b.get("data")]
    if not commits:
        raise ValueError("dvc exp show --json: no baseline commit with data")
    base = commits[0]
    rows = [(f"{base.get('name') or base['rev'][:7]} (baseline)", base["data"])]
    for exp in base.get("experiments") or []:
        executor = exp.get("executor") or {}
        if executor.get("state") not in (None, "success"):
            continue  # queued, running or failed
        for rev in exp.get("revs") or []:
            if rev.get("data") and not rev.get("error"):
                rows.append((rev.get("name") or rev["rev"][:7], rev["data"]))
    return base["data"], rows


def finished_span(exp_show: list[dict], prefix: str) -> dict[str, Any] | None:
    """How many experiments named ``prefix``* finished, and the minutes from the first one's end to the last's
    (their commits' timestamps): the sweep's cost as the queue ran it."""
    _, rows = exp_rows(exp_show)
    stamps = [datetime.fromisoformat(data["timestamp"]) for name, data in rows[1:]
              if name.startswith(prefix) and data.get("timestamp")]
    if not stamps:
        return None
    return {"experiments": len(stamps), "minutes": (max(stamps) - min(stamps)).total_seconds() / 60}


def exp_params(data: dict) -> dict[str, Any]:
    return flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})


def _test_metrics(data: dict, model: str) -> dict | None:
    """The test KL and reconstruction term of ``model``, averaged over its seeds (metrics/train/<model>.json)."""
    entry = ((data.get("metrics") or {}).get(f"metrics/train/{model}.json") or {}).get("data") or {}
    tests = [v["test"] for k, v in entry.items() if k.startswith("seed") and isinstance(v, dict) and "test" in v]
    if not tests or not all("kl" in t and "recon" in t for t in tests):
        return None
    return {key: sum(t[key] for t in tests) / len(tests) for key in ("kl", "recon")}


def points_from_exp_show(exp_show: list[dict], models: tuple[str, ...] = ("vae_bce", "vae_mse")) -> list[Point]:
    """One point per distinct (model, beta, latent size) that differs from the baseline in one of them.

    A row counts for ``model`` only if every param outside ``models.<model>.{beta,latent_dim}`` and
    outside the other models' entries equals the baseline's (same data, epochs, seed, architecture).
    """
    base_data, rows = exp_rows(exp_show)
    base = exp_params(base_data)
    points: dict[tuple, Point] = {}
    for name, data in rows:
        params = exp_params(data)
        for model in models:
            own = f"models.{model}."
            swept = {own + key for key in SWEPT}
            fixed = {k for k in base.keys() | params.keys()
                     if k not in swept and (k.startswith(own) or not k.startswith("models."))}
            test = _test_metrics(data, model)
            if test is None or own + "beta" not in params or any(params.get(k) != base.get(k) for k in fixed):
                continue
            beta, latent = float(params[own + "beta"]), int(params[own + "latent_dim"])
            if beta != base[own + "beta"] and latent != base[own + "latent_dim"]:
                continue  # two factors changed: on neither sweep
            points.setdefault((model, beta, latent), Point(model, beta, latent, float(test["kl"]),
                                                          float(test["recon"]), name))
    return sorted(points.values(), key=lambda p: (p.model, p.latent_dim, p.beta))


def rd_curves(points: list[Point], model: str, base_beta: float = 1.0, base_latent: int = 2) -> dict[str, list[Point]]:
    """The beta sweep (latent size fixed) and the latent-size sweep (beta fixed) of ``model``."""
    own = [p for p in points if p.model == model]
    return {"beta": sorted((p for p in own if p.latent_dim == base_latent), key=lambda p: p.beta),
            "latent_dim": sorted((p for p in own if p.beta == base_beta), key=lambda p: p.latent_dim)}


def table_markdown(points: list[Point]) -> str:
    lines = ["| model | beta | latent size | rate (nats) | rate (bits) | distortion (test recon) | experiment |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    lines += [f"| {p.model} | {p.beta:g} | {p.latent_dim} | {p.rate_nats:.2f} | {p.rate_bits:.2f} | "
              f"{p.distortion:.2f} | {p.exp} |" for p in points]
    return "\n".join(lines) + "\n"
