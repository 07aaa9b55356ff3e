"""DVC stage `judge`: train the digit classifier that judges decoded images (models/judge, metrics/judge.json)."""

from pathlib import Path

import click

from vaelab.core.config import Params, load_params
from vaelab.core.device import resolve_device
from vaelab.core.files import write_json
from vaelab.core.layout import Layout
from vaelab.data.mnist import load_split
from vaelab.measures import judge as judges
from vaelab.pipeline.stage import outputs, run_stage


def train_judge(params: Params, root: Path = Path(".")) -> dict:
    train = load_split(root / "data", "train", params.data.train_size)
    test = load_split(root / "data", "test", params.data.test_size)
    net, metrics = judges.train(params.judge, params.seeds[0], train, test, resolve_device(params.device))
    with outputs(root, "judge", replace=[Layout().rel(Layout().judge_dir)]) as staged:
        judges.save(net, params.judge, Layout(staged).judge_checkpoint)
        write_json(Layout(staged).judge_metrics, metrics)
    return metrics


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Train the judge on the training set; write models/judge and metrics/judge.json."""
    run_stage("judge", lambda: train_judge(load_params(params_path)))


if __name__ == "__main__":
    main()
