"""DVC stage `binarize`: one fixed, seeded binarisation of the MNIST test set (``data/binarized/test.npy``, uint8 0/1,
[10000, 784]), the test set of the binarised-MNIST yardstick. A DVC output, so it is the same everywhere."""

from __future__ import annotations

import io
from pathlib import Path

import click
import numpy as np
import torch

from vaelab.core.config import Params, load_params
from vaelab.data.mnist import load_split
from vaelab.data.spaces import binarize
from vaelab.pipeline.stage import publish, run_stage, staging


def write_binarized_test(params: Params, root: Path = Path(".")) -> Path:
    test = load_split(root / "data", "test")
    bits = binarize(test.images, torch.Generator().manual_seed(params.evaluate.binarize_seed)).to(torch.uint8).numpy()
    buf = io.BytesIO()
    np.save(buf, bits, allow_pickle=False)
    with staging(root, "binarize") as staged:
        (staged / "data" / "binarized").mkdir(parents=True)
        (staged / "data" / "binarized" / "test.npy").write_bytes(buf.getvalue())
        publish(staged, root)
    return root / "data" / "binarized" / "test.npy"


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(params_path: str) -> None:
    """Write the fixed binarisation of the test set."""
    run_stage("binarize", lambda: write_binarized_test(load_params(params_path)))


if __name__ == "__main__":
    main()
