"""What a measure or a figure needs of a model, said once: a :class:`Needs` is met by a model that has each
capability it names (a prior to sample, a label it is conditioned on, a 2-D code, a likelihood that is a density,
binary pixels, a bounded code). The evaluation's measure registry (:data:`vaelab.studies.scorecard.MEASURES`) and
the figures (:data:`vaelab.viz.model_figures.FIGURES`) ask it; nothing else tests a model's kind or capabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

# How each capability is read off a model (the models' own class attributes and config).
READ: dict[str, Callable[[Any], bool]] = {
    "prior": lambda m: m.has_prior,
    "conditional": lambda m: m.conditional,
    "latent_2d": lambda m: m.cfg.latent_dim == 2,
    "density": lambda m: getattr(getattr(m, "likelihood", None), "density", False),
    "binary": lambda m: m.space.binary,
    "box": lambda m: m.latent_box is not None,
}


@dataclass(frozen=True)
class Needs:
    """Each field: True = the model must have it, False = must not, None = either."""

    prior: bool | None = None
    conditional: bool | None = None
    latent_2d: bool | None = None
    density: bool | None = None
    binary: bool | None = None
    box: bool | None = None

    def met_by(self, model: Any) -> bool:
        # In field order, stopping at the first miss: `density` is read only of a model with a prior.
        return all(READ[f.name](model) == want for f in fields(self) if (want := getattr(self, f.name)) is not None)


ANY = Needs()
