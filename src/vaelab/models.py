"""The study's models (an autoencoder and a VAE, both MLPs) and their checkpoint format.

Public API used by the later stages and by users::

    model = vaelab.models.load("models/vae_bce/model.pt")   # eval mode, on the CPU
    z = model.encode(x)            # AE: z in [0,1]^d; VAE: (mu, logvar)
    x_mean = model.decode(z)       # [N, 784] pixel means in [0, 1]
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from vaelab import losses
from vaelab.config import ConfigError, ModelConfig, from_dict
from vaelab.data import INPUT_DIM
from vaelab.files import atomic_path

FORMAT = "vaelab.model/1"


class CheckpointError(RuntimeError):
    """A file is not a readable vaelab model checkpoint."""


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """Deterministic AE; a sigmoid on the code keeps the latent in the unit cube, as in the study."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = mlp([INPUT_DIM, *cfg.hidden, cfg.latent_dim])
        # Why the batch-norm: without it Adam drives the pre-sigmoid code to |z| ~ 70 within ~20 steps
        # (measured at lr 1e-3 and 3e-4, several seeds), the sigmoid saturates, every image gets the same
        # code and the AE collapses to the mean digit. Normalising the code keeps it on the sigmoid's slope.
        self.code_norm = nn.BatchNorm1d(cfg.latent_dim)
        self.decoder = mlp([cfg.latent_dim, *reversed(cfg.hidden), INPUT_DIM])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.code_norm(self.encoder(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        recon = losses.squared_error(self.decode(self.encode(x)), x).mean()
        return {"loss": recon, "recon": recon, "kl": torch.zeros_like(recon)}


class VAE(nn.Module):
    """VAE with diagonal-Gaussian q(z|x), N(0, I) prior and a Gaussian or Bernoulli decoder."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = mlp([INPUT_DIM, *cfg.hidden, 2 * cfg.latent_dim])
        self.decoder = mlp([cfg.latent_dim, *reversed(cfg.hidden), INPUT_DIM])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def decoder_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """beta-weighted negative ELBO, batch mean: E_q[-log p(x|z)] + beta KL(q(z|x) || p(z))."""
        mu, logvar = self.encode(x)
        z = losses.reparameterize(mu, logvar)
        recon = losses.reconstruction_nll(self.cfg.likelihood, self.decoder(z), x).mean()
        kl = losses.kl_std_normal(mu, logvar).mean()
        return {"loss": recon + self.cfg.beta * kl, "recon": recon, "kl": kl}


Model = Autoencoder | VAE


def build(cfg: ModelConfig, seed: int | None = None) -> Model:
    """A freshly initialised model for one row of the experiment matrix (seeded: reproducible weights)."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return Autoencoder(cfg) if cfg.kind == "ae" else VAE(cfg)


def save(model: Model, path: str | Path) -> None:
    """Write a checkpoint that ``load`` reads with ``weights_only=True`` (atomically: temp file + rename)."""
    save_module(model, FORMAT, dataclasses.asdict(model.cfg), Path(path))


def load(path: str | Path, device: str | torch.device = "cpu") -> Model:
    """Load a trained model in eval mode. Never executes code from the file (``weights_only=True``)."""
    return load_module(path, FORMAT, lambda c: build(from_dict(ModelConfig, c, "config")),
                       "run `dvc repro` to train it", device)


def save_module(module: nn.Module, fmt: str, config: dict, path: Path) -> None:
    """Save ``{format, config, state_dict}`` via a temporary file and a rename: never half-written."""
    payload = {"format": fmt, "config": config,
               "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_module(path: str | Path, fmt: str, build_from: Callable[[dict], nn.Module], missing_hint: str,
                device: str | torch.device = "cpu") -> nn.Module:
    """Read a :func:`save_module` checkpoint (a folder means its model.pt) in eval mode on ``device``.

    ``weights_only=True``: no code from the file runs. Any problem raises CheckpointError naming the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint; {missing_hint}") from None
    except Exception as err:  # torch raises many types for corrupt or foreign pickles
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path}: not a vaelab checkpoint of format {fmt!r}")
    try:
        module = build_from(payload["config"])
        module.load_state_dict(payload["state_dict"])
    except (ConfigError, RuntimeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: checkpoint does not match its config: {err}") from None
    return module.to(device).eval()
