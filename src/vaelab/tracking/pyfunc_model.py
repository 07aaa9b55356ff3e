"""The code of vaelab's MLflow Model (MLflow "models from code"): logged by :func:`vaelab.tracking.log_model` as
the model's definition, so loading a registered model runs this file instead of unpickling an object.

``mlflow.pyfunc.load_model("models:/vaelab-<model>/<version>").predict(images)`` returns reconstructions: the
decoded posterior mean of each image, [N, 784] float32 pixel means in [0, 1]. ``images`` is [N, 784] float32
in [0, 1]; a conditional model (CVAE) takes the digit label as a 785th column.
"""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import numpy as np
import torch

INPUT_DIM = 784   # MNIST pixels (vaelab.data.mnist.INPUT_DIM; tracking reads no data module)


class VaelabModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from vaelab.models import load

        self.model = load(context.artifacts["checkpoint"])

    def predict(self, context, model_input, params=None) -> np.ndarray:
        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        images, labels = x[:, :INPUT_DIM], x[:, INPUT_DIM:]
        # The model says what it takes for the labels (None when it ignores them): no test of its kind here.
        y = self.model.condition(labels[:, 0].long()) if labels.shape[1] else None
        with torch.no_grad():
            return self.model.mean_image(self.model.encode(images, y).mean, y).numpy()


mlflow.models.set_model(VaelabModel())
