"""DVC stage `binarize`: one fixed, seeded binarisation of the MNIST test set (``data/binarized/test.npy``, uint8 0/1,
[10000, 784]), the test set of the binarised-MNIST yardstick. A DVC output, so it is the same everywhere."""

from pathlib import Path

import click

from vaelab.core.config import Params, load_params
from vaelab.core.layout import Layout
from vaelab.data.mnist import binarized_test_bytes
from vaelab.pipeline.stage import outputs, run_stage


def write_binarized_test(params: Params, root: Path = Path(".")) -> Path:
    data = binarized_test_bytes(root / "data", params.evaluate.binarize_seed)
    with outputs(root, "binarize") as staged:
        Layout(staged).binarized_test.parent.mkdir(parents=True)
        Layout(staged).binarized_test.write_bytes(data)
    return Layout(root).binarized_test


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Write the fixed binarisation of the test set."""
    run_stage("binarize", lambda: write_binarized_test(load_params(params_path)))


if __name__ == "__main__":
    main()
