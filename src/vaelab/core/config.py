"""Typed configuration: params.yaml becomes one frozen dataclass, validated once at a stage's boundary.

Every stage calls :func:`load_params` and passes the typed pieces down; no other module reads
params.yaml. Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming the
key path, the value and what was expected, before any work is done.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vaelab.core.errors import ConfigError

MNIST_TRAIN_SIZE = 60_000
# A `models:` entry's optional own seeds: a setting of the study, not of the model (never in its checkpoint).
SEEDS_KEY = "seeds"
MNIST_TEST_SIZE = 10_000
# YAML 1.1 (PyYAML) reads `1e-3` as a string; DVC's YAML 1.2 reads it as a float. Accept both.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _min(bound: float) -> dict:
    return {"check": (lambda v: v >= bound), "expect": f">= {bound}"}


def _between(low: int, high: int) -> dict:
    return {"check": (lambda v: low <= v <= high), "expect": f"between {low} and {high}"}


def _positive() -> dict:
    return {"check": (lambda v: v > 0), "expect": "> 0"}


# Field validators for the model modules' own Config dataclasses.
def positive_int() -> dict:
    return _min(1)


def non_negative() -> dict:
    return _min(0.0)


def hidden_widths() -> dict:
    # Widths of the hidden layers: with the in/out layer, three widths make four linear layers a side.
    return {"check": (lambda v: len(v) >= 1 and min(v) >= 1), "expect": "a non-empty list of widths >= 1"}


@dataclass(frozen=True)
class MlflowConfig:
    experiment: str = "vaelab"


@dataclass(frozen=True)
class DataConfig:
    mirrors: list[str] = field(default_factory=list)
    # None = all 60,000 training images; N = the first N (quick runs).
    train_size: int | None = field(default=None, metadata=_between(1, MNIST_TRAIN_SIZE))
    # None = all 10,000 test images; N = the first N (quick runs: every test-set number is then on N images).
    test_size: int | None = field(default=None, metadata=_between(1, MNIST_TEST_SIZE))


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = field(default=10, metadata=_min(1))
    batch_size: int = field(default=128, metadata=_min(1))
    lr: float = field(default=1e-3, metadata=_positive())
    # vaelab.training.optim.OPTIMIZERS: fused Adam, or SGD with momentum 0.9
    optimizer: Literal["adam", "sgd"] = "adam"


@dataclass(frozen=True)
class FiguresConfig:
    """What the figure and report stages draw (never what is trained)."""

    grid_size: int = field(default=20, metadata=_between(2, 100))  # manifold: grid_size x grid_size tiles
    n_examples: int = field(default=20, metadata=_between(10, 200))  # reconstructions; >= 10: every digit
    samples: int = field(default=10, metadata=_between(1, 50))  # prior samples: samples x samples grid
    interp_pairs: int = field(default=6, metadata=_between(1, 50))  # interpolations: one row per pair
    interp_steps: int = field(default=10, metadata=_between(2, 50))  # images per row, both ends included
    data_grid: int = field(default=10, metadata=_between(1, 30))  # data.png: data_grid^2 training images
    # Half-width of the VAE latent-scatter axes; null = fit the codes. The AE's axes are always [0, 1].
    vae_range: float | None = field(default=4.0, metadata=_positive())
    dpi: int = field(default=100, metadata=_between(30, 600))


@dataclass(frozen=True)
class JudgeConfig:
    """The CNN digit classifier (stage `judge`) whose features and verdicts the evaluation uses."""

    channels: int = field(default=32, metadata=_min(1))     # first convolution; the second has twice as many
    hidden: int = field(default=128, metadata=_min(1))      # the feature layer (FID, KID, precision, density, coverage)
    epochs: int = field(default=2, metadata=_min(1))
    batch_size: int = field(default=128, metadata=_min(1))
    lr: float = field(default=1e-3, metadata=_positive())


@dataclass(frozen=True)
class EvaluateConfig:
    """The `evaluate` stage: how hard to look at each trained model."""

    # Importance samples per test image for the IWAE bound on log p(x) (models with a prior), on the first
    # `likelihood_images` test images (None = all 10,000).
    iwae_samples: int = field(default=200, metadata=_min(1))
    likelihood_images: int | None = field(default=2000, metadata=_between(1, MNIST_TEST_SIZE))
    # The binarised yardstick: K and the number of (binarised) test images.
    binarized_iwae_samples: int = field(default=5000, metadata=_min(1))
    binarized_images: int | None = field(default=500, metadata=_between(1, MNIST_TEST_SIZE))
    # −log p(x) by quadrature over 2-d latents (exact, not a bound) on the first N test images (0 = skip).
    quadrature_images: int = field(default=500, metadata=_between(0, MNIST_TEST_SIZE))
    # Decoded prior samples compared with the 10,000 test images (FID, KID, precision, density, coverage).
    sample_images: int = field(default=10_000, metadata=_between(100, 100_000))
    # Neighbours for the kNN digit classifier in latent space.
    knn_k: int = field(default=10, metadata=_min(1))
    # Points for the silhouette score: a seeded random subset of the test latents; None = all.
    silhouette_size: int | None = field(default=None, metadata=_min(2))
    # Test images for the codes' trustworthiness (their knn_k nearest codes against their nearest images): a subset
    # drawn by continuity_seed, the same images for every model.
    trust_images: int = field(default=2000, metadata=_between(0, MNIST_TEST_SIZE))
    # The decoded manifold grid is grid_size x grid_size images (2-d latents only).
    grid_size: int = field(default=20, metadata=_min(1))
    # Seed of the one fixed binarisation of the test set (stage `binarize`), the binarised yardstick's test set.
    binarize_seed: int = 0
    # A decoded image "is a digit" when the classifier's top softmax probability reaches this.
    threshold: float = field(default=0.9, metadata={"check": (lambda v: 0 < v <= 1), "expect": "in (0, 1]"})
    # Continuity (vaelab.measures.continuity): this many pairs of different digits and as many of the same digit, drawn
    # from the test set by `continuity_seed` (the same pairs for every model), each path decoded at
    # `continuity_steps` points; an image is "real" when its k-th neighbour distance to the real test images,
    # in the judge's features, is within the `realness_quantile` of the real images' own.
    continuity_pairs: int = field(default=500, metadata=_min(1))
    continuity_steps: int = field(default=16, metadata=_min(3))
    continuity_seed: int = 0
    realness_k: int = field(default=5, metadata=_min(1))
    realness_quantile: float = field(default=0.95, metadata={"check": (lambda v: 0 < v < 1), "expect": "in (0, 1)"})
    # Conditional models (vaelab.measures.style): test codes decoded under every label, a seeded subset of this size.
    style_images: int = field(default=1000, metadata=_between(1, MNIST_TEST_SIZE))
    # The seed of the likelihood tables' test subsets (vaelab.data.image_sets: random, not the first N): the
    # likelihood set (likelihood_images), the exact set (quadrature_images, the same permutation's first N, so
    # inside the likelihood set) and the binarised sets; every number of one table is measured on one of them.
    image_set_seed: int = 0
    # Exact -log p(x) re-computed at tighter quadrature settings on the first N images of the exact set
    # (finer coarse grid, larger radius, lower tolerance): the largest difference is recorded (0 = skip).
    tight_images: int = field(default=20, metadata=_between(0, MNIST_TEST_SIZE))
    # The groups of metrics/eval/<model>.json to measure (names of vaelab.studies.scorecard.MEASURES); None = all.
    # A sweep asks for a few (e.g. [reconstruction, latent]): the study's default measures every group.
    groups: list[str] | None = None


@dataclass(frozen=True)
class InferenceConfig:
    """Stage `inference`: the exact posterior and the inference gaps of 2-d models (first seed)."""

    models: list[str] = field(default_factory=list)   # keys of `models` (2-d latent, with a prior)
    images: int = field(default=200, metadata=_between(1, MNIST_TEST_SIZE))          # log p(x), ELBO, IWAE
    iwae_ks: list[int] = field(default_factory=lambda: [1, 10, 100, 1000])
    local_images: int = field(default=50, metadata=_between(1, MNIST_TEST_SIZE))     # per-image Gaussian fits
    local_steps: int = field(default=300, metadata=_min(1))
    figure_digits: int = field(default=4, metadata=_between(1, 20))


@dataclass(frozen=True)
class ClaimSpec:
    """One of the post's claims, as a comparison of one metric between two models over the same seeds."""

    claim: str                          # the post's words
    metric: str                         # dotted key of metrics/eval/<model>.json, e.g. latent.knn_accuracy
    better: Literal["higher", "lower"]
    model: str                          # the model the claim favours
    baseline: str                       # the model it is compared with (fixed here: no forking paths)
    # The margin of practical equivalence, in the metric's units: a difference within ± margin does not matter.
    margin: float = field(metadata={"check": (lambda v: v > 0), "expect": "a finite number > 0"})
    why: str = ""                       # why the metric tests the claim (the report prints it)
    # The same quantity at other values of the measure's free settings (other dotted keys): the verdict is
    # recomputed with each, so that the report shows whether it holds across them.
    variants: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReportConfig:
    # "What it took to reproduce the post": these models side by side, each with what it is, in words.
    post_ae: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CollapseConfig:
    """Stage `collapse`: the first optimiser steps of these `models:` entries (AEs with a sigmoid code), first seed."""

    models: list[str] = field(default_factory=list)
    steps: int = field(default=60, metadata=_between(1, 10_000))


@dataclass(frozen=True)
class TuningConfig:
    """The sweeps' rules (stages/tuning.py reads the queued experiments by them), fixed before the sweeps ran.

    A seed **failed** (collapsed, or did not learn in the sweep's epochs) when more than `saturated` of its test
    codes sit on the sigmoid box's edge, or its codes' kNN digit accuracy is at most `knn` (about 0.1, chance, when every code is the same point), or its test error is at least `mse`
    (the mean image's: 52.9). A setting **works** for a model when none of its seeds failed and its mean test
    error is at most (1 + `margin`) times the model's best working setting's."""

    saturated: float = field(default=0.5, metadata={"check": (lambda v: 0 <= v <= 1), "expect": "in [0, 1]"})
    knn: float = field(default=0.5, metadata={"check": (lambda v: 0 <= v <= 1), "expect": "in [0, 1]"})
    mse: float = field(default=45.0, metadata=_positive())
    margin: float = field(default=0.10, metadata=_positive())
    # ...and it works by the latent when none failed and its mean kNN accuracy is at least the best minus this.
    knn_margin: float = field(default=0.05, metadata=_positive())
    # Two models' shares of working settings within this of each other are practically equal (the verdict's
    # equivalence margin); the interval of their difference is a bootstrap over seeds (exact up to 6 seeds, else `resamples` draws).
    equivalence: float = field(default=0.125, metadata=_positive())
    resamples: int = field(default=2000, metadata=_min(100))
    level: float = field(default=0.95, metadata={"check": (lambda v: 0 < v < 1), "expect": "in (0, 1)"})


MIN_QUADRANT_SAMPLES = 100   # S >= 100 importance samples per image for the quadrant task's −log p(missing | given)


def _given_list() -> dict:
    return {"check": (lambda v: len(v) >= 1 and len(set(v)) == len(v) and set(v) <= {1, 2, 3}),
            "expect": "a non-empty list of distinct numbers of given quadrants, each 1, 2 or 3"}


@dataclass(frozen=True)
class QuadrantsConfig:
    """params.yaml ``quadrants:``, Sohn, Lee & Yan's quadrant completion (:mod:`vaelab.studies.quadrants`): which
    settings (1, 2 or 3 given quadrants), the networks, epochs, S importance samples, the test images, the figure."""

    given: list[int] = field(default_factory=lambda: [1, 2, 3], metadata=_given_list())
    hidden: list[int] = field(default_factory=lambda: [500, 500], metadata=hidden_widths())
    latent_dim: int = field(default=32, metadata=positive_int())
    baseline_epochs: int = field(default=5, metadata=positive_int())
    epochs: int = field(default=8, metadata=positive_int())        # the CVAE's
    batch_size: int = field(default=128, metadata=positive_int())
    lr: float = field(default=1e-3, metadata={"check": (lambda v: v > 0), "expect": "> 0"})
    samples: int = field(default=100, metadata={"check": (lambda v: v >= MIN_QUADRANT_SAMPLES), "expect": f">= {MIN_QUADRANT_SAMPLES}"})    # S, importance samples per image
    test_images: int | None = field(default=MNIST_TEST_SIZE, metadata={  # the first N test images; null = all
        "check": (lambda v: 2 <= v <= MNIST_TEST_SIZE), "expect": f"between 2 and {MNIST_TEST_SIZE} (or null: all)"})
    figure_examples: int = field(default=10, metadata={"check": (lambda v: 1 <= v <= 100), "expect": "between 1 and 100"})
    figure_samples: int = field(default=5, metadata={"check": (lambda v: 1 <= v <= 20), "expect": "between 1 and 20"})


def _distinct(low: int, high: int | None = None) -> dict:
    top = "" if high is None else f" and <= {high}"
    return {"check": (lambda v: len(v) >= 1 and len(set(v)) == len(v) and min(v) >= low
                      and (high is None or max(v) <= high)),
            "expect": f"a non-empty list of distinct integers >= {low}{top}"}


def _counts() -> dict:
    return {"check": (lambda v: len(v) >= 1 and min(v) >= 1), "expect": "a non-empty list of integers >= 1"}


@dataclass(frozen=True)
class SBIConfig:
    """params.yaml ``sbi:``, the simulation-based inference study (:mod:`vaelab.sbi.study`): which sbibm tasks and
    observations, the simulation budgets, each estimator's settings, and the C2ST's draws. ``epochs`` and
    ``batch_sizes`` pair with ``budgets`` (the CVAE's and BBVI's schedule at that budget; NPE early-stops as sbibm)."""

    tasks: list[str] = field(default_factory=lambda: ["gaussian_linear", "two_moons", "gaussian_mixture", "slcp"])
    estimators: list[str] = field(default_factory=lambda: ["cvae", "bbvi", "npe"])
    budgets: list[int] = field(default_factory=lambda: [1000, 10000], metadata=_distinct(10))
    epochs: list[int] = field(default_factory=lambda: [50, 30], metadata=_counts())
    batch_sizes: list[int] = field(default_factory=lambda: [100, 200], metadata=_counts())
    lr: float = field(default=1e-3, metadata=_positive())
    hidden: list[int] = field(default_factory=lambda: [64, 64], metadata=hidden_widths())
    latent_dim: int = field(default=4, metadata=positive_int())      # the CVAE's z
    iw_samples: int = field(default=5, metadata=positive_int())      # the CVAE's importance samples (1: the ELBO)
    components: int = field(default=8, metadata=positive_int())      # BBVI's Gaussian mixture
    observations: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5], metadata=_distinct(1, 10))
    samples: int = field(default=1000, metadata=_min(10))           # posterior and reference draws per C2ST
    seed: int = 0


@dataclass(frozen=True)
class Params:
    """Everything in params.yaml."""

    # Raw `models:` entries, validated through the model registry by vaelab.models.spec_of.
    models: dict[str, dict]
    # Every model is trained, drawn and evaluated once per seed; figures come from the first.
    seeds: list[int] = field(default_factory=lambda: [0], metadata={
        "check": (lambda v: len(v) >= 1 and len(set(v)) == len(v)), "expect": "a non-empty list of distinct seeds"})
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mlflow: MlflowConfig = MlflowConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    figures: FiguresConfig = FiguresConfig()
    judge: JudgeConfig = JudgeConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    inference: InferenceConfig = InferenceConfig()
    claims: list[ClaimSpec] = field(default_factory=list)
    report: ReportConfig = ReportConfig()
    quadrants: QuadrantsConfig = QuadrantsConfig()
    collapse: CollapseConfig = CollapseConfig()
    tuning: TuningConfig = TuningConfig()
    sbi: SBIConfig = SBIConfig()
    # Sweeps of DVC experiments (vaelab.pipeline.sweeps validates each entry when stages/sweep.py queues it).
    sweeps: dict[str, dict] = field(default_factory=dict)

    def model_entry(self, name: str) -> dict:
        """The raw `models.<name>` entry (validated by :func:`vaelab.models.spec_of`)."""
        if name not in self.models:
            raise ConfigError(f"models.{name}: no such model; params.yaml defines {sorted(self.models)}")
        return self.models[name]

    def seeds_of(self, name: str) -> list[int]:
        """The seeds model ``name`` is trained, drawn and evaluated with: its entry's own `seeds` (the claims'
        models get more) or else the top-level `seeds`. Figures and single-seed stages use the first."""
        return list(self.model_entry(name).get(SEEDS_KEY, self.seeds))


def _check_seeds(value: Any, path: str) -> None:
    ok = (isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
          and len(set(value)) == len(value))
    if not ok:
        raise ConfigError(f"{path} = {value!r}: expected a non-empty list of distinct integer seeds")


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Convert a YAML value to the annotated type ``tp``, or raise ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, path)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{path} = {value!r}: expected one of {list(choices)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path} = {value!r}: expected a list")
        (inner,) = typing.get_args(tp)
        return [_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"{path} = {value!r}: expected a non-empty mapping")
        _, inner = typing.get_args(tp)
        return {str(k): _convert(inner, v, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if tp is float and not isinstance(value, bool):
        if isinstance(value, int) or (isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip())):
            value = float(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{path} = {value!r}: expected a finite number")
    # bool is a subclass of int in Python, but `epochs: true` is a mistake, not 1 epoch.
    if isinstance(value, bool) != (tp is bool) or not isinstance(value, tp):
        raise ConfigError(f"{path} = {value!r}: expected {tp.__name__}")
    return value


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and bad values."""
    where = path or "params.yaml"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} = {data!r}: expected a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"{key}: unknown key; expected one of {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: missing required key")
            continue
        value = _convert(hints[name], data[name], key)
        check = f.metadata.get("check")
        if check is not None and value is not None and not check(value):
            raise ConfigError(f"{key} = {value!r}: expected {f.metadata['expect']}")
        kwargs[name] = value
    return cls(**kwargs)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml (``yaml.safe_load``: no object construction from the file)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (run from the project root)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    try:
        params = from_dict(Params, raw or {})
        for name, entry in params.models.items():
            if isinstance(entry, dict) and SEEDS_KEY in entry:
                _check_seeds(entry[SEEDS_KEY], f"models.{name}.{SEEDS_KEY}")
        for i, c in enumerate(params.claims):
            for role in ("model", "baseline"):
                if getattr(c, role) not in params.models:
                    raise ConfigError(f"claims[{i}].{role} = {getattr(c, role)!r}: expected a key of `models` "
                                      f"{sorted(params.models)}")
        return params
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a (nested) dataclass or mapping to dotted keys, e.g. for MLflow params."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
