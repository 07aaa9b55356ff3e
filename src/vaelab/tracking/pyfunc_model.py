"""The code of vaelab's MLflow Model (MLflow "models from code"): logged by :func:`vaelab.tracking.log_model` as
the model's definition, so loading a registered model runs this file instead of unpickling an object.

``model = mlflow.pyfunc.load_model("models:/vaelab-vae_bce@champion")``, then ``model.predict(rows, params=...)``
with ``params={"method": ...}`` (float32 arrays in, float32 arrays out; a conditional model, the CVAE, takes the
digit label as one more, last, column of ``rows``):

============== ====================================== ==============================================
method         rows                                   returns
============== ====================================== ==============================================
reconstruct    images [N, 784] in [0, 1] (default)    the decoded posterior means' images [N, 784]
encode         images [N, 784]                        the posterior's means, then its scales (standard
                                                      deviations; 0 for an AE's point mass) [N, 2 latent_dim]
decode         codes [N, latent_dim]                  their mean images [N, 784] (a grid, a path)
sample         [N, 1]: ignored, or the label           N images decoded from z ~ N(0, I), drawn by the
                                                      param ``seed`` (default 0); models with a prior
============== ====================================== ==============================================

The same calls work against ``mlflow models serve`` (JSON ``{"inputs": rows, "params": {"method": "encode"}}``
posted to ``/invocations``).
"""

from __future__ import annotations

from typing import Callable

import mlflow
import mlflow.pyfunc
import numpy as np
import torch

INPUT_DIM = 784   # MNIST pixels (vaelab.data.mnist.INPUT_DIM; tracking reads no data module)
PARAMS = {"method": "reconstruct", "seed": 0}   # the signature's params, with their defaults


def _split(x: torch.Tensor, width: int, conditional: bool, method: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the first ``width`` columns, the label column or None), or a ValueError saying what ``method`` expected."""
    expected = width + int(conditional)
    if x.ndim != 2 or x.shape[1] != expected:
        label = " and the label as a last column" if conditional else ""
        raise ValueError(f"method {method!r}: got rows of shape {tuple(x.shape)}: expected [N, {expected}] "
                         f"({width} columns{label})")
    return x[:, :width], (x[:, width].long() if conditional else None)


class VaelabModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from vaelab.models import load

        self.model = load(context.artifacts["checkpoint"])

    def _condition(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        # The model says what it takes for the labels (None when it ignores them): no test of its kind here.
        return None if labels is None else self.model.condition(labels)

    def reconstruct(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        images, labels = _split(x, INPUT_DIM, self.model.conditional, "reconstruct")
        y = self._condition(labels)
        return self.model.mean_image(self.model.encode(images, y).mean, y)

    def encode(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        images, labels = _split(x, INPUT_DIM, self.model.conditional, "encode")
        q = self.model.encode(images, self._condition(labels))
        # The posterior says its scale; a point mass (an AE's code) has none: 0.
        return torch.cat([q.mean, getattr(q, "std", torch.zeros_like(q.mean))], dim=1)

    def decode(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        codes, labels = _split(x, self.model.cfg.latent_dim, self.model.conditional, "decode")
        return self.model.mean_image(codes, self._condition(labels))

    def sample(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        if not self.model.has_prior:
            raise ValueError("method 'sample': this model has no prior to sample (an autoencoder); use 'decode'")
        _, labels = _split(x, 1 - int(self.model.conditional), self.model.conditional, "sample")
        z = torch.randn(len(x), self.model.cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
        return self.model.mean_image(z, self._condition(labels))

    def predict(self, context, model_input, params=None) -> np.ndarray:
        params = {**PARAMS, **(params or {})}
        methods: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
            "reconstruct": self.reconstruct, "encode": self.encode, "decode": self.decode, "sample": self.sample}
        if params["method"] not in methods:
            raise ValueError(f"params method = {params['method']!r}: expected one of {', '.join(methods)}")
        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return methods[params["method"]](x, int(params["seed"])).numpy()


mlflow.models.set_model(VaelabModel())
