"""The figures of one trained model: what to draw (from the model and the test split) and where it goes.

:func:`model_figures` is pure (model + data + params in, Figures out); :func:`save_figures` writes PNGs
atomically; :func:`figures_stage` is the ``figures@<model>`` stage: load, draw, log to the model's
MLflow training run, then publish under ``reports/figures/<model>/``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import torch
from matplotlib.figure import Figure

from vaelab import charts, latent, models, plots, tracking
from vaelab.config import FiguresConfig, ModelConfig, Params
from vaelab.data import NUM_CLASSES, Split, load_split
from vaelab.files import atomic_path

log = logging.getLogger(__name__)
FIGURES_DIR = Path("reports") / "figures"
# Every figure kind a model can have, in report order; file name = kind + ".png".
KINDS = ("reconstructions", "latent", "latent_by_digit", "manifold", "prior_samples", "interpolations")


def model_label(name: str) -> str:
    """How figures and the report name a model: ``vae_bce`` -> ``VAE-BCE``."""
    return name.upper().replace("_", "-")


def expected_kinds(cfg: ModelConfig) -> list[str]:
    """The figures drawn for a model: no prior for the AE, no manifold unless the latent is 2-D."""
    return [k for k in KINDS if not ((k == "prior_samples" and cfg.kind == "ae")
                                     or (k == "manifold" and cfg.latent_dim != 2))]


def by_digit(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of ``n`` test images cycling through the digits 0-9 (the k-th round takes each digit's k-th image)."""
    per_class = [torch.nonzero(labels == d).flatten() for d in range(NUM_CLASSES)]
    return torch.stack([per_class[i % NUM_CLASSES][i // NUM_CLASSES] for i in range(n)])


def latent_limits(cfg: ModelConfig, codes: torch.Tensor, vae_range: float | None) -> tuple[float, float]:
    """Scatter axes: the AE's unit square, else ±vae_range, else (null) symmetric around the codes."""
    if cfg.kind == "ae":
        return (0.0, 1.0)
    half = vae_range if vae_range is not None else 1.05 * codes[:, :2].abs().max().item()
    return (-half, half)


@torch.no_grad()
def model_figures(name: str, model: models.Model, test: Split, fig: FiguresConfig, seed: int) -> dict[str, Figure]:
    """All figures of one model, keyed by kind (see :func:`expected_kinds`)."""
    cfg = model.cfg
    label = model_label(name)
    projected = cfg.latent_dim != 2
    proj = f" (projection: first 2 of {cfg.latent_dim} latent dims)" if projected else ""
    codes = latent.encode_mean(model, test.images)
    limits = latent_limits(cfg, codes, fig.vae_range)
    out: dict[str, Figure] = {}

    idx = by_digit(test.labels, fig.n_examples)
    out["reconstructions"] = plots.reconstructions(test.images[idx], model.decode(codes[idx]),
                                                   f"{label}: test images and their reconstructions")
    what = "z" if cfg.kind == "ae" else "mean of q(z|x)"
    out["latent"] = charts.latent_scatter(codes, test.labels, limits, f"{label}: test set in latent space ({what}){proj}",
                                         projected)
    out["latent_by_digit"] = charts.latent_by_digit(codes, test.labels, limits,
                                                   f"{label}: latent codes by digit{proj}", projected)
    if cfg.latent_dim == 2:
        grid = latent.manifold_grid(cfg.kind, fig.grid_size)
        where = "unit square" if cfg.kind == "ae" else "quantiles of N(0, 1)"
        out["manifold"] = plots.manifold(model.decode(grid), latent.grid_axis(cfg.kind, fig.grid_size),
                                         f"{label}: decoded latent grid ({where})")
    else:
        log.info("%s: latent size %d, not 2: manifold grid skipped", name, cfg.latent_dim)
    gen = torch.Generator().manual_seed(seed)
    if cfg.kind == "vae":
        z = torch.randn(fig.samples ** 2, cfg.latent_dim, generator=gen)
        out["prior_samples"] = plots.image_grid(model.decode(z), fig.samples, f"{label}: decoded samples z ~ N(0, I)")

    # Pair k joins digits k and 3k+7 (mod 10), never the same digit; round k // 10 takes the next images.
    starts = by_digit(test.labels, 10 * (fig.interp_pairs // 10 + 1))
    ends = torch.tensor([[k % 10 + 10 * (k // 10), (3 * k + 7) % 10 + 10 * (k // 10)] for k in range(fig.interp_pairs)])
    pairs = starts[ends]  # [pairs, 2] test indices
    t = torch.linspace(0, 1, fig.interp_steps)[None, :, None]
    a, b = codes[pairs[:, :1]], codes[pairs[:, 1:]]  # [pairs, 1, latent]
    paths = model.decode(((1 - t) * a + t * b).reshape(-1, cfg.latent_dim)).reshape(len(pairs), fig.interp_steps, -1)
    rows = [f"{test.labels[i].item()} → {test.labels[j].item()}" for i, j in pairs.tolist()]
    out["interpolations"] = plots.interpolations(paths, f"{label}: decoded straight lines between test codes", rows)
    return out


def save_figures(figs: dict[str, Figure], folder: Path, dpi: int) -> list[Path]:
    """Write ``<kind>.png`` for each figure, each via a temporary file and a rename."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, figure in figs.items():
        path = folder / f"{kind}.png"
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=dpi, format="png")
        written.append(path)
    return written


def figures_stage(params: Params, name: str, root: Path = Path(".")) -> list[Path]:
    """Draw model ``name``'s figures from its checkpoint (never retrains), log them to its MLflow run, publish."""
    from mlflow.tracking import MlflowClient

    params.model(name)  # a clear error for an unknown name
    experiment_id = tracking.setup(params.mlflow.experiment)
    run_id = tracking.latest_training_run(experiment_id, name)
    model = models.load(root / "models" / name)
    figs = model_figures(name, model, load_split(root / "data", "test"), params.figures, params.seed)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".figures-"))
    try:
        save_figures(figs, staging, params.figures.dpi)
        MlflowClient().log_artifacts(run_id, str(staging), artifact_path="figures")
        dest = root / FIGURES_DIR / name
        dest.mkdir(parents=True, exist_ok=True)
        for stale in set(dest.glob("*.png")) - {dest / p.name for p in staging.glob("*.png")}:
            stale.unlink()  # e.g. a manifold.png left from a 2-D latent
        for png in staging.glob("*.png"):
            os.replace(png, dest / png.name)
    finally:
        for leftover in staging.glob("*"):
            leftover.unlink()
        staging.rmdir()
    log.info("%s: %d figures in %s, logged to MLflow run %s", name, len(figs), dest, run_id)
    return sorted(dest.glob("*.png"))
