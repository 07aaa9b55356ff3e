"""The whole default study against its arithmetic lower bound, stage by stage (not a test).

The lower bound of a stage is its floating-point work over the fp32 matrix-product peak measured in this run:
no implementation on this machine can be faster. The work is counted from params.yaml, analytically, from the
networks' linear and convolution layers (2 FLOPs per multiply-accumulate forward, 6 forward and backward);
elementwise work (activations, likelihoods, Adam) is left out, so the bound is a little optimistic. What is
counted, per stage:

- ``judge``: its epochs over the training set, forward and backward, and one pass over the test set;
- ``references``: the judge's features of the real test images and as many training images (the neighbour
  searches are not counted);
- ``train@<model>``: every seed's epochs, forward and backward, plus the per-epoch test pass (loss and
  reconstruction: two forward passes);
- ``evaluate@<model>``: every seed's codes of the training and test sets, the reconstructions, the K-sample
  importance-weighted decoder passes of each likelihood table (own space, 8-bit track, binarised track, a
  conditional model's ten labels), the quadrature's coarse grid (``coarse``² rows per image, as
  :func:`vaelab.measures.inference.quadrature`'s default), and the prior samples with their judge features;
- ``inference``: per listed model, the largest K's decoder passes, the local fits' steps and their evaluation;
- ``quadrants``: every setting's baseline and CVAE epochs and the S-sample scoring of the test images.

Measured wall times are the last ``dvc repro``'s, from ``.vaelab/stage-times.jsonl`` (every stage appends its
time there, :func:`vaelab.pipeline.stage.record_time`); stages without a record show "-". The peak is measured now, the
times then: quote the ratio with that caveat, or run this right after ``make repro`` on an idle machine::

    PYTHONPATH=src:. python benchmarks/study.py     # or: make bench
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import torch

from vaelab import models
from vaelab.core.config import MNIST_TRAIN_SIZE, Params, load_params
from vaelab.data.mnist import INPUT_DIM, SPLIT_SIZES
from vaelab.models.layers import StackedLinear

COARSE = 256           # vaelab.measures.inference.quadrature's default coarse grid (coarse² rows per image)
LOCAL_SAMPLES = 16     # vaelab.measures.inference.fit_local_gaussian's samples per step
LOCAL_EVAL = 1000      # ... and its evaluation samples


def linear_macs(module: torch.nn.Module) -> int:
    return sum(m.weight.shape[1] * m.weight.shape[2] for m in module.modules() if isinstance(m, StackedLinear))


def judge_macs(channels: int, hidden: int) -> int:
    side = 28
    return (side * side * channels * 9 + (side // 2) ** 2 * 2 * channels * 9 * channels
            + 2 * channels * 49 * hidden + hidden * 10)


def stage_flops(params: Params) -> dict[str, float]:
    """FLOPs of every stage of the default study (see the module docstring for what is counted)."""
    n_train = params.data.train_size or MNIST_TRAIN_SIZE
    n_test = params.data.test_size or SPLIT_SIZES["test"]
    from vaelab.studies.quadrants import parse_config

    ev, inf, quad = params.evaluate, params.inference, parse_config(params.quadrants)
    judge = judge_macs(params.judge.channels, params.judge.hidden)
    out = {"judge": 6 * judge * n_train * params.judge.epochs + 2 * judge * n_test,
           "references": 2 * judge * 2 * min(params.evaluate.sample_images, n_test)}
    for name in params.models:
        model = models.build(models.spec_of(params, name))
        enc, dec = linear_macs(model.encoder), linear_macs(model.decoder)
        seeds = len(params.seeds_of(name))
        out[f"train@{name}"] = seeds * params.train.epochs * (6 * (enc + dec) * n_train + 4 * (enc + dec) * n_test)
        per_seed = 2 * enc * (n_train + n_test) + 2 * dec * n_test
        if model.has_prior:
            lik = ev.likelihood_images or n_test
            per_seed += 2 * dec * lik * ev.iwae_samples
            if model.conditional:
                per_seed += 2 * dec * 10 * lik * ev.iwae_samples  # the label marginal: the likelihood set x 10 labels
            if model.likelihood.density and not model.conditional:
                # grey8bit's bound on the dequantised images is the model's own bound when it lives there
                # (scorecard.Context.unconditional_bounds: computed once)
                shared = model.space.name == "dequantized"
                per_seed += (0 if shared else 2 * dec * lik * ev.iwae_samples) + 2 * INPUT_DIM * COARSE ** 2 * ev.quadrature_images
            if model.space.binary and not model.conditional:
                per_seed += 2 * dec * ev.binarized_images * ev.binarized_iwae_samples
                per_seed += 2 * INPUT_DIM * COARSE ** 2 * ev.binarized_images
            per_seed += (2 * dec + 2 * judge) * ev.sample_images
        out[f"evaluate@{name}"] = seeds * per_seed
        if name in inf.models:
            out["inference"] = out.get("inference", 0.0) + 2 * dec * inf.images * max(inf.iwae_ks) \
                + 6 * dec * inf.local_images * inf.local_steps * LOCAL_SAMPLES + 2 * dec * inf.local_images * LOCAL_EVAL \
                + 2 * INPUT_DIM * COARSE ** 2 * inf.images
    quad_flops = 0.0
    for given in quad.given:
        g = given * INPUT_DIM // 4
        widths = lambda sizes: sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))  # noqa: E731
        base = widths([g, *quad.hidden, INPUT_DIM - g])
        cvae = 2 * widths([INPUT_DIM, *quad.hidden, 2 * quad.latent_dim]) + widths([g + quad.latent_dim, *quad.hidden, INPUT_DIM - g])
        scored = quad.test_images or n_test
        quad_flops += 6 * base * n_train * quad.baseline_epochs + (6 * cvae + 2 * base) * n_train * quad.epochs
        quad_flops += 2 * widths([quad.latent_dim, *quad.hidden, INPUT_DIM - g]) * scored * quad.samples
    out["quadrants"] = quad_flops
    return out


def last_times(path: Path = Path(".vaelab/stage-times.jsonl")) -> dict[str, float]:
    times: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            times[entry["stage"]] = entry["seconds"]
    return times


def last_entries(path: Path) -> dict[str, dict]:
    """The last JSON line per stage of a ``.vaelab/*.jsonl`` record."""
    return {e["stage"]: e for e in map(json.loads, path.read_text().splitlines())} if path.exists() else {}


CLAIM_MODELS = ("ae", "ae_post", "vae_mse", "vae_bce", "cvae")   # the claims issue's 10 seeds


def makespan(seeds: int, cores: int) -> float:
    """The train stage's wall time in seed-trainings on one core: its largest stacked group, or the seeds shared
    over the cores when there are more groups than cores (:func:`vaelab.training.seeds.seed_groups`)."""
    from vaelab.training.seeds import seed_groups

    return max(max(map(len, seed_groups(list(range(seeds)), cores))), seeds / cores)


def ten_seed_estimate(params: Params, times: dict[str, float], seeds: int = 10) -> dict[str, float]:
    """The default study's wall time with ``seeds`` seeds for :data:`CLAIM_MODELS`, from the last repro's measured
    stage times: a model's train and evaluate stages scale with its seeds per core (training: :func:`makespan`,
    1.5 for 3 seeds and 5 for 10 on 2 cores; evaluation: every seed shares the cores); every other stage as measured. Linear in seeds: stacking more seeds per worker runs
    faster per seed (benchmarks/speed.py), so this is an upper estimate."""
    import os

    cores = os.cpu_count() or 1
    out = {}
    for stage, seconds in times.items():
        kind, _, name = stage.partition("@")
        if name in CLAIM_MODELS and kind in ("train", "evaluate"):
            now = len(params.seeds_of(name))
            if kind == "train":
                scale = makespan(seeds, cores) / makespan(now, cores)
            else:
                scale = seeds / now
            out[stage] = seconds * scale
        else:
            out[stage] = seconds
    return out


def ten_seed_flops(params: Params, flops: dict[str, float], seeds: int = 10) -> dict[str, float]:
    """:func:`stage_flops` with ``seeds`` seeds for :data:`CLAIM_MODELS`: their train and evaluate stages' arithmetic
    is linear in the seeds."""
    def scale(stage: str) -> float:
        kind, _, name = stage.partition("@")
        return seeds / len(params.seeds_of(name)) if name in CLAIM_MODELS and kind in ("train", "evaluate") else 1.0

    return {stage: f * scale(stage) for stage, f in flops.items()}


def run(peak_gflops: float | None = None) -> dict:
    from benchmarks.speed import matmul_peak

    torch.set_num_threads(torch.get_num_threads())
    peak = peak_gflops or matmul_peak()
    flops = stage_flops(load_params())
    times = last_times()
    params = load_params()
    return {"peak_gflops": peak, "stages": {k: {"gflop": v / 1e9, "bound_s": v / 1e9 / peak, "measured_s": times.get(k)}
                                            for k, v in flops.items()}, "other_stages_s": {k: v for k, v in times.items() if k not in flops},
            "train_speed": last_entries(Path(".vaelab/train-speed.jsonl")),
            "evaluate_parts": last_entries(Path(".vaelab/evaluate-parts.jsonl")),
            "ten_seeds_s": sum(ten_seed_estimate(params, times).values()) if times else None,
            "ten_seeds_bound_s": sum(ten_seed_flops(params, flops).values()) / 1e9 / peak}


def report(out: dict) -> list[str]:
    lines = [f"the default study against its arithmetic lower bound (fp32 peak {out['peak_gflops']:.0f} GFLOP/s, measured now; "
             "times from the last dvc repro, .vaelab/stage-times.jsonl):",
             f"  {'stage':24s} {'GFLOP':>9s} {'bound s':>9s} {'measured s':>11s} {'ratio':>6s}"]
    bound = measured = 0.0
    complete = True
    for name, s in out["stages"].items():
        bound += s["bound_s"]
        if s["measured_s"] is None:
            complete = False
            lines.append(f"  {name:24s} {s['gflop']:9.0f} {s['bound_s']:9.1f} {'-':>11s} {'-':>6s}")
            continue
        measured += s["measured_s"]
        lines.append(f"  {name:24s} {s['gflop']:9.0f} {s['bound_s']:9.1f} {s['measured_s']:11.1f} "
                     f"{s['measured_s'] / s['bound_s']:6.1f}")
    other = sum(out["other_stages_s"].values())
    lines.append(f"  {'total':24s} {'':9s} {bound:9.1f} {measured:11.1f} {measured / bound if bound else 0:6.1f}"
                 + ("" if complete else "  (stages without a time left out of the measured total)"))
    if other:
        lines.append(f"  plus {other:.0f} s in stages with no counted arithmetic: "
                     + ", ".join(f"{k} {v:.0f} s" for k, v in out["other_stages_s"].items()))
    if out["train_speed"]:
        lines.append("the train stages' own throughput as the last dvc repro ran them (.vaelab/train-speed.jsonl: "
                     "training images, with the per-epoch test passes in the time; the peak measured right after):")
        for name, e in out["train_speed"].items():
            lines.append(f"  {name:24s} {e['images_per_s']:8.0f} images/s, {e['gflop_per_s']:5.0f} GFLOP/s = "
                         f"{e['gflop_per_s'] / e['peak_gflops']:4.0%} of {e['peak_gflops']:.0f}")
    if out["evaluate_parts"]:
        lines.append("the evaluation's parts, each group's share of a seed's scoring, the mean over seeds "
                     "(.vaelab/evaluate-parts.jsonl; a lazily shared draw counts to its first user):")
        for name, e in out["evaluate_parts"].items():
            groups = {k: sum(p.get(k, 0.0) for p in e["parts"]) / len(e["parts"]) for k in e["parts"][0]}
            total = sum(groups.values())
            lines.append(f"  {name:24s} {total:6.1f} s: " + ", ".join(f"{k} {v / total:.0%}" for k, v in groups.items()
                                                                    if v / total >= 0.02))
    if out["ten_seeds_s"] is not None:
        lines.append(f"the default study with 10 seeds for {', '.join(CLAIM_MODELS)}, from the measured stage times: "
                     f"about {out['ten_seeds_s'] / 60:.0f} min (an upper estimate; the issue's goal: <= 75 min); its "
                     f"arithmetic alone at the peak above: {out['ten_seeds_bound_s'] / 60:.0f} min")
    return lines


@click.command()
def main() -> None:
    click.echo(time.strftime("%Y-%m-%d %H:%M"))
    for line in report(run()):
        click.echo(line)


if __name__ == "__main__":
    main()
