"""The model registry: one line per model kind. A new kind is one module here plus one line below.

Public API::

    from vaelab import models
    model = models.load("models/vae_bce/seed42/model.pt")   # eval mode; torch.load(weights_only=True) inside
    q = model.encode(x)               # a posterior object: q.mean, q.rsample(), q.kl()
    images = model.mean_image(q.mean) # [N, 784] pixel means in [0, 1]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from vaelab.core.checkpoints import load_module, payload, save_bytes, to_bytes
from vaelab.core.config import SEEDS_KEY, Params, from_dict
from vaelab.core.errors import ConfigError
from vaelab.core.stacking import stack_states, unstack_state
from vaelab.models import likelihoods
from vaelab.models.ae import Autoencoder
from vaelab.models.base import LatentModel
from vaelab.models.cvae import CVAE
from vaelab.models.vae import VAE

REGISTRY: dict[str, type[LatentModel]] = {
    "ae": Autoencoder,
    "vae": VAE,
    "cvae": CVAE,
}
for _kind, _cls in REGISTRY.items():
    _cls.kind = _kind
# /3: weights [1, in, out] of the stacked layers (vaelab.models.layers)
FORMAT = "vaelab.model/3"


@dataclass(frozen=True)
class ModelSpec:
    """One entry of params.yaml `models:`: its kind and that kind's validated settings."""

    kind: str
    config: Any

    def as_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self.config)}


def spec_from_dict(data: Any, path: str) -> ModelSpec:
    """Validate a `models:` entry; an unknown kind is a ConfigError listing the registered kinds."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path} = {data!r}: expected a mapping with a `kind`")
    rest = dict(data)
    rest.pop(SEEDS_KEY, None)   # the study's setting (Params.seeds_of), not the model's
    kind = rest.pop("kind", None)
    if kind not in REGISTRY:
        raise ConfigError(f"{path}.kind = {kind!r}: expected one of the registered kinds {sorted(REGISTRY)}")
    config = from_dict(REGISTRY[kind].Config, rest, path)
    REGISTRY[kind].validate(config, path)
    return ModelSpec(kind, config)


def spec_of(params: Params, name: str) -> ModelSpec:
    """The validated spec of model ``name`` of params.yaml (a ConfigError names the key and what is expected)."""
    return spec_from_dict(params.model_entry(name), f"models.{name}")


def check_all(params: Params) -> list[ModelSpec]:
    """Validate every `models:` entry up front (a stage fails before any work on a bad entry)."""
    return [spec_of(params, name) for name in params.models]


def build(spec: ModelSpec, seed: int | None = None) -> LatentModel:
    """A freshly initialised model (seeded: reproducible weights, the global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return REGISTRY[spec.kind](spec.config)


def stack(singles: list[LatentModel]) -> LatentModel:
    """One model holding the given single-seed models side by side (their weights stacked on a seed axis), to
    train them together; :func:`unstack` gives them back. Each keeps exactly its own initial weights."""
    first = singles[0]
    stacked = REGISTRY[first.kind](first.cfg, stack=len(singles)).to(first.device)
    stacked.load_state_dict(stack_states([m.state_dict() for m in singles]))
    return stacked.train(first.training)


def unstack(stacked: LatentModel) -> list[LatentModel]:
    """The single-seed models of a stacked one, in seed order (copies: later training of ``stacked`` leaves them)."""
    state = stacked.state_dict()
    singles = []
    for i in range(stacked.stack):
        model = REGISTRY[stacked.kind](stacked.cfg).to(stacked.device)
        model.load_state_dict(unstack_state(state, i))
        singles.append(model.train(stacked.training))
    return singles


def _payload(model: LatentModel) -> dict:
    return payload(model, FORMAT, {"kind": model.kind, **asdict(model.cfg)})


def checkpoint_bytes(model: LatentModel) -> bytes:
    """The checkpoint file's bytes: identical weights give identical bytes."""
    return to_bytes(_payload(model))


def save(model: LatentModel, path: str | Path) -> None:
    """Write a checkpoint that :func:`load` reads (atomically, byte-identical for identical weights)."""
    save_bytes(_payload(model), Path(path))


def load(path: str | Path, device: str | torch.device = "cpu") -> LatentModel:
    """Load a trained model in eval mode. Never executes code from the file (``weights_only=True``)."""
    return load_module(path, FORMAT, lambda c: build(spec_from_dict(c, "config")),
                       "run `dvc repro` to train it", device)


def serving_example(spec: ModelSpec, data: Path, n: int = 5) -> torch.Tensor:
    """The first ``n`` test images (under ``data``) as the MLflow Model takes them (``tracking/pyfunc_model.py``):
    the pixels, and for a conditional model the digit label as a 785th column."""
    from vaelab.data.mnist import load_split

    split = load_split(data, "test")
    if REGISTRY[spec.kind].conditional:
        return torch.cat([split.images[:n], split.labels[:n, None].float()], dim=1)
    return split.images[:n]


def fixed_scale(spec: ModelSpec) -> bool:
    """Whether the model's decoder likelihood has a fixed scale (a Gaussian of set σ: its NLL is a squared error
    plus a constant, not a calibrated density), read from the spec's likelihood class: no model is built."""
    likelihood = getattr(spec.config, "likelihood", None)
    return isinstance(likelihood, dict) and likelihoods.LIKELIHOODS[likelihood["name"]].fixed_scale
