"""`make quick`: the post's study alone (one seed, a subset) to its report, one `dvc exp run --temp`; not a stage."""

import os
import subprocess
import time
from pathlib import Path

import click
import yaml

from vaelab import tracking
from vaelab.pipeline.stage import run_stage

MODELS = ("ae_post", "ae", "vae_mse", "vae_bce")   # the post's AE made to work, vaelab's AE, its two VAEs; no other
SETTINGS = """seeds=[42] data.train_size=10000 data.test_size=2000 train.epochs=3 judge.epochs=1 claims=[]
evaluate.iwae_samples=20 evaluate.likelihood_images=500 evaluate.quadrature_images=20 evaluate.tight_images=2
evaluate.binarized_iwae_samples=20 evaluate.binarized_images=100 evaluate.sample_images=2000
evaluate.continuity_pairs=100 evaluate.trust_images=500 inference.images=20 inference.local_images=5
inference.local_steps=50 inference.iwae_ks=[1,10] quadrants.test_images=200 quadrants.epochs=1 quadrants.given=[2]
quadrants.baseline_epochs=1 collapse.models=[ae_post] sbi.tasks=[two_moons] sbi.estimators=[cvae] sbi.budgets=[200]
sbi.observations=[1] sbi.samples=200""".split()


def quick(out: Path, p: dict) -> None:
    name, keep = time.strftime("quick-%Y%m%d-%H%M%S"), ",".join(m for m in p["inference"]["models"] if m in MODELS)
    sets = [*SETTINGS, f"inference.models=[{keep}]", *(f"~report.post_ae.{m}" for m in p["report"]["post_ae"] if m
            not in MODELS), *(f"++models.{m}.seeds=[42]" if m in MODELS else f"~models.{m}" for m in p["models"])]
    subprocess.run(["dvc", "exp", "run", "--temp", "--name", name, *(a for s in sets for a in ("-S", s))], check=True,
                   env={**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri()})  # not the temp folder's store
    click.echo(f"{name}: `dvc exp show`; report: {tracking.download_report(p['mlflow']['experiment'], name, out)}")


@click.command()
def main() -> None:
    """Run the post's study alone, quickly, as a DVC experiment, and fetch its report into quick/."""
    run_stage("quick", lambda: quick(Path("quick"), yaml.safe_load(Path("params.yaml").read_text())))


if __name__ == "__main__":
    main()
