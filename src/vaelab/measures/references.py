"""What every model's evaluation compares against, the same for every model and seed: the real side of sample quality
(the judge's features of the real test images and their k-NN radii) and the realness threshold of the continuity
measures. The ``references`` stage computes it once (:mod:`vaelab.studies.references`); each evaluation loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vaelab.core.checkpoints import save_bytes
from vaelab.core.config import EvaluateConfig
from vaelab.core.errors import CheckpointError
from vaelab.measures import judge as judges
from vaelab.measures.continuity import Realness
from vaelab.measures.sample_quality import RealReference

FORMAT = "vaelab-references/1"
@dataclass(frozen=True)
class References:
    """The real side of the evaluation's comparisons (see the module docstring)."""

    samples: RealReference
    realness: Realness

    def save(self, path: Path) -> None:
        save_bytes({"format": FORMAT, **self.samples.tensors(), "realness_k": self.realness.k,
                    "realness_threshold": self.realness.threshold,
                    "realness_others": [list(pair) for pair in self.realness.others]}, path)

    @classmethod
    def load(cls, path: Path) -> "References":
        """Read :meth:`save`'s file (``weights_only=True``: no code from the file runs)."""
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such file; run `dvc repro references`") from None
        except Exception as err:  # torch raises many types for corrupt or foreign pickles
            raise CheckpointError(f"{path}: not readable ({type(err).__name__}: {err})") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a {FORMAT} file; run `dvc repro references`")
        real = RealReference(saved["features"], saved["precision_radii"], saved["density_radii"])
        others = tuple((float(q), float(t)) for q, t in saved.get("realness_others", []))
        return cls(real, Realness(real.features, saved["realness_k"], saved["realness_threshold"], others))


def of_images(judge: torch.nn.Module, test_images: torch.Tensor, cfg: EvaluateConfig) -> References:
    """The references of the first ``cfg.sample_images`` of ``test_images`` (N samples against N test images,
    FID's usual protocol)."""
    real = RealReference.of(judges.features(judge, test_images[:cfg.sample_images]))
    return References(real, Realness.fit(real.features, cfg.realness_k, cfg.realness_quantile))
