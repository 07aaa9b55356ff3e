"""The conditional VAE of Sohn, Lee & Yan (2015): the digit label enters the encoder and the decoder, so the
latent code only has to carry what the label does not say (the style of the handwriting).

q(z|x, y) = N(μ(x, y), diag σ²(x, y)) and p(x|z, y) take the label one-hot, concatenated to x and to z.
The prior does not depend on the label, p(z|y) = p(z) = N(0, I), so the paper's prior network is dropped
and z ~ N(0, I) decoded with any label draws that digit. The loss is the paper's conditional lower bound
(Sohn et al. 2015, sec. 3; their x is the condition and y the output, here the roles are swapped):
−log p(x|y) ≤ E_q[−log p(x|z, y)] + β KL(q(z|x, y) ‖ N(0, I)), written once in
:meth:`vaelab.models.base.LatentModel.loss`. The likelihood spec, the `data` space and the posterior are
the VAE's (this class only changes what the two networks see).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vaelab.core.distributions import DiagonalGaussian
from vaelab.data.mnist import NUM_CLASSES
from vaelab.models.vae import VAE


class CVAE(VAE):
    """A VAE whose encoder sees [x, onehot(y)] and whose decoder sees [z, onehot(y)]; y are int64 digits 0-9."""

    conditional = True
    condition_dim = NUM_CLASSES

    def one_hot(self, y: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """[N, 10] one-hot rows of the int64 labels ``y`` [N], in the dtype and on the device of ``like``.

        No range check on the host (that would synchronise a CUDA step); one_hot itself rejects labels
        outside 0-9 (on CUDA through a device-side assert).
        """
        if y is None:
            raise ValueError(f"{self.kind}: a conditional model needs the digit labels y (int64 [N]), got None")
        if y.dtype != torch.int64 or y.shape != like.shape[:-1]:
            raise ValueError(f"{self.kind}: labels y must be int64 of shape {list(like.shape[:-1])} (one digit per row), "
                             f"got {y.dtype} of shape {list(y.shape)}")
        return F.one_hot(y, NUM_CLASSES).to(like.dtype)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalGaussian:
        return super().encode(torch.cat([x, self.one_hot(y, x)], dim=-1))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return super().decode(torch.cat([z, self.one_hot(y, z)], dim=-1))
