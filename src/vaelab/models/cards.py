"""What each model of params.yaml `models:` is, in words: the description of its MLflow runs and of its
registered model. Written from the model's validated settings and the docstrings of its kind and likelihood,
and set beside its nearest neighbour in params.yaml (the model whose settings differ in the fewest keys), so
that a reader of the MLflow UI sees what this model changes."""

from __future__ import annotations

import re

from vaelab import models
from vaelab.core.config import Params, flatten
from vaelab.models import likelihoods

UNSET = "(unset)"  # a setting one model has and its neighbour lacks (e.g. a fixed σ)


def _first_sentence(doc: str | None) -> str:
    text = " ".join((doc or "").split("\n\n")[0].split())
    # A sentence ends at a full stop before a capital letter ("Rybkin et al. 2021, sec. 3" does not end).
    return re.split(r"\.\s+(?=[A-Z])", text)[0].rstrip(".") + "." if text else ""


def settings(params: Params, name: str) -> dict[str, object]:
    """The model's validated settings as dotted keys (defaults filled in), e.g. ``likelihood.name``."""
    return flatten(models.spec_of(params, name).as_dict())


def neighbour(params: Params, name: str) -> tuple[str, dict[str, tuple[object, object]]] | None:
    """The other model whose settings differ from ``name``'s in the fewest keys (the first in params.yaml order
    among ties), and those keys with (its value, this model's value); None when there is no other model."""
    mine = settings(params, name)
    best = None
    for other in params.models:
        if other == name:
            continue
        theirs = settings(params, other)
        diff = {k: (theirs.get(k, UNSET), mine.get(k, UNSET)) for k in sorted(set(mine) | set(theirs))
                if theirs.get(k, UNSET) != mine.get(k, UNSET)}
        if best is None or len(diff) < len(best[1]):
            best = (other, diff)
    return best


def describe(params: Params, name: str) -> str:
    """A short Markdown description of model ``name``: what it is, its settings, what differs from its neighbour."""
    spec = models.spec_of(params, name)
    lines = [f"**{name}** (kind `{spec.kind}`): {_first_sentence(models.REGISTRY[spec.kind].__doc__)}"]
    like = settings(params, name).get("likelihood.name")
    if like is not None:
        lines.append(f"Decoder likelihood `{like}`: {_first_sentence(likelihoods.LIKELIHOODS[like].__doc__)}")
    lines.append("Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings(params, name).items()) + ".")
    near = neighbour(params, name)
    if near is not None:
        other, diff = near
        changes = ", ".join(f"`{k}` {a} → {b}" for k, (a, b) in diff.items()) or "nothing"
        lines.append(f"Nearest model in params.yaml: **{other}**; from it, this model changes {changes}.")
    lines.append(f"Trained with seeds {', '.join(map(str, params.seeds_of(name)))} for {params.train.epochs} epochs "
                 "(params.yaml `seeds`, or the entry's own `seeds`; `train`).")
    return "\n\n".join(lines)
