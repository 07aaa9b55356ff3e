"""DVC stage `judge`: train the digit classifier that judges decoded images (models/judge, metrics/judge.json)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vaelab.core.config import Params, load_params
from vaelab.core.device import resolve_device
from vaelab.core.files import write_atomic
from vaelab.data.mnist import load_split
from vaelab.measures import judge as judges
from vaelab.core.layout import Layout
from vaelab.pipeline.stage import publish, run_stage, staging


def train_judge(params: Params, root: Path = Path(".")) -> dict:
    cfg, seed = params.judge, params.seeds[0]
    train = load_split(root / "data", "train", params.data.train_size)
    test = load_split(root / "data", "test", params.data.test_size)
    net = judges.fit(judges.build(cfg, seed).to(resolve_device(params.device)), train.images, train.labels,
                         cfg, seed)
    metrics = {"train_accuracy": judges.accuracy(net, train.images, train.labels),
               "test_accuracy": judges.accuracy(net, test.images, test.labels)}
    with staging(root, "judge") as staged:
        out = Layout(staged)
        judges.save(net, cfg, out.judge_checkpoint)
        write_atomic(out.judge_metrics, json.dumps(metrics, indent=2) + "\n")
        publish(staged, root, replace=[out.rel(out.judge_dir)])
    return metrics


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Train the judge on the training set; write models/judge and metrics/judge.json."""
    run_stage("judge", lambda: train_judge(load_params(params_path)))


if __name__ == "__main__":
    main()
