"""DVC stage `download`: fetch and verify the four MNIST archives into data/MNIST/raw/."""

import click

from vaelab.core.config import load_params
from vaelab.data.download import download_mnist, mirrors_from_env
from vaelab.pipeline.stage import run_stage


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
@click.option("--root", default="data", show_default=True, help="Data folder (torchvision's MNIST layout).")
def main(params_path: str, root: str) -> None:
    """Download MNIST: $VAELAB_MNIST_MIRROR first (URL or folder), then data.mirrors."""
    run_stage("download", lambda: download_mnist(root, mirrors_from_env(load_params(params_path).data.mirrors)))


if __name__ == "__main__":
    main()
