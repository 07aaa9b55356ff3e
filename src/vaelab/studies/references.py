"""The ``references`` stage's work: what every model's evaluation compares against
(:class:`vaelab.measures.references.References`), computed once instead of once per model and seed, and the numbers
that are the same for every model, written to ``metrics/references.json``:

- ``samples_reference``: sample quality of as many training images as samples, against the same real test images
  (real against real: the floor a perfect sampler would reach), its KID subsets drawn by the first seed;
- ``sharpness``: the test images' own ``data_*`` statistics (:func:`vaelab.measures.sharpness.statistics`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from vaelab.core.config import Params
from vaelab.core.errors import ConfigError
from vaelab.core.layout import Layout
from vaelab.data.mnist import load_split
from vaelab.measures import judge as judges
from vaelab.measures import sharpness
from vaelab.measures.references import References, of_images
from vaelab.measures.sample_quality import sample_quality


def compute(params: Params, root: Path = Path(".")) -> tuple[References, dict]:
    """The references and ``metrics/references.json``'s numbers, from the judge and the MNIST splits."""
    cfg, at = params.evaluate, Layout(root)
    test = load_split(at.data, "test", params.data.test_size)
    if cfg.sample_images > len(test.images):
        raise ConfigError(f"params.yaml: evaluate.sample_images = {cfg.sample_images}, but the test set has "
                          f"{len(test.images)} images (data.test_size): expected at most {len(test.images)}")
    judge = judges.load(at.judge_checkpoint)
    train = load_split(at.data, "train", params.data.train_size)
    refs = of_images(judge, test.images, cfg)
    floor = sample_quality(refs.samples, judges.features(judge, train.images[:cfg.sample_images]),
                           torch.Generator().manual_seed(params.seeds[0]))
    data = {f"data_{k}": v for k, v in sharpness.statistics(test.images, test.images).items()}
    return refs, {"samples_reference": floor, "sharpness": data}
