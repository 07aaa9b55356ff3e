"""Building blocks shared by every network: layers whose weights carry a leading seed axis.

A model's S seeds train as one stacked model: every parameter and buffer is ``[S, ...]``, activations are
``[S, B, ...]`` and one batched matrix product (``torch.baddbmm``) runs all seeds' layers at once, which keeps
the CPU's matrix units busy where S small models would each leave them idle. With S = 1 (every saved
model, evaluation, the figures) activations have no seed axis: ``[B, ...]`` in, one ``addmm`` per layer.

Seeds never mix: each seed's slice of a weight only ever meets its own slice of the activations, so the
sum of the seeds' losses gives each seed exactly the gradient of its own loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn


# How a linear layer's weights are drawn. "torch": as ``nn.Linear`` is, W and b ~ U(−1/√in, 1/√in), a weight
# variance of 1/(3 in) that shrinks a ReLU network's activations layer by layer. "he": W ~ N(0, 2/in), b = 0
# (He et al. 2015), which keeps their scale through ReLU layers.
INITS = ("torch", "he")


class StackedLinear(nn.Module):
    """S independent affine maps ``h @ W_s + b_s``; weight ``[S, in, out]``, bias ``[S, out]``, drawn as
    ``init`` (:data:`INITS`) says."""

    def __init__(self, fan_in: int, fan_out: int, stack: int = 1, init: str = "torch"):
        super().__init__()
        if init == "he":
            self.weight = nn.Parameter(torch.empty(stack, fan_in, fan_out).normal_(0.0, math.sqrt(2 / fan_in)))
            self.bias = nn.Parameter(torch.zeros(stack, fan_out))
            return
        bound = 1 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(stack, fan_in, fan_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(stack, fan_out).uniform_(-bound, bound))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if len(self.weight) > 1:  # [S, B, in]
            return torch.baddbmm(self.bias.unsqueeze(1), h, self.weight)
        # One seed: no seed axis, any leading shape [..., in]
        return torch.addmm(self.bias[0], h.reshape(-1, h.shape[-1]), self.weight[0]).view(*h.shape[:-1], -1)


class StackedBatchNorm(nn.Module):
    """Batch normalisation of the last axis with per-seed statistics and affine parameters (as
    ``nn.BatchNorm1d``: biased batch variance to normalise, unbiased in the running average, momentum 0.1)."""

    def __init__(self, dim: int, stack: int = 1, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(stack, dim))
        self.bias = nn.Parameter(torch.zeros(stack, dim))
        self.register_buffer("running_mean", torch.zeros(stack, dim))
        self.register_buffer("running_var", torch.ones(stack, dim))

    def _shaped(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return t.unsqueeze(1) if len(t) > 1 else t[0]  # [S, 1, d] against [S, B, d]; [d] with one seed

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.training:
            flat = h if len(self.weight) > 1 else h.reshape(-1, h.shape[-1])
            mean = flat.mean(-2, keepdim=True)
            var = flat.var(-2, unbiased=False, keepdim=True)
            n = flat.shape[-2]
            with torch.no_grad():
                self.running_mean.lerp_(mean.reshape(self.running_mean.shape), self.momentum)
                self.running_var.lerp_((var * n / max(n - 1, 1)).reshape(self.running_var.shape), self.momentum)
        else:
            mean, var = self._shaped(self.running_mean, h), self._shaped(self.running_var, h)
        return (h - mean) * torch.rsqrt(var + self.eps) * self._shaped(self.weight, h) + self._shaped(self.bias, h)


def mlp(sizes: list[int], stack: int = 1, init: str = "torch") -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last), ``stack`` seeds wide,
    drawn as ``init`` (:data:`INITS`) says."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(StackedLinear(fan_in, fan_out, stack, init))
    return nn.Sequential(*layers)
