"""The project's optimizers: fused Adam that runs without importing ``torch._dynamo`` (every default), and SGD
with momentum (`train.optimizer: sgd`, one of the settings the post leaves open: the post's-AE search sweeps it).

In torch 2.14 every public method of ``torch.optim.Optimizer`` imports ``torch._dynamo`` on its first call,
which costs 1.5–2 s of start-up on this machine and does nothing for eager training:

- ``add_param_group`` (called by ``__init__``), ``zero_grad``, ``state_dict`` and ``load_state_dict`` are
  wrapped in ``torch._disable_dynamo``, which imports ``torch._dynamo`` when the wrapper first runs;
- ``Adam.step`` is wrapped in ``_use_grad_for_differentiable``, which runs ``import torch._dynamo`` and two
  ``torch._dynamo.graph_break()`` on every step (graph breaks for ``torch.compile``; no-ops in eager mode).

The functional ``adam`` behind ``step`` only reaches for dynamo while compiling, so :func:`make_adam` returns
``torch.optim.Adam(fused=True)`` with exactly those wrappers peeled off (``inspect.unwrap``): the same
``_init_group`` and the same ``torch._fused_adam_`` kernel, so the updates are bit-identical to
``torch.optim.Adam(params, lr=lr, fused=True)`` and its state dict is interchangeable with one. Fused, not
the default (foreach), because fused was measured 1.4x faster per step here (benchmarks/startup.py measures
this class against it). Not for use under ``torch.compile``: the dynamo wrappers are what make the optimizer
traceable, and this project never compiles.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

import torch

# The plain functions under torch's dynamo wrappers (functools.wraps keeps them as __wrapped__). Adam.step may
# already carry the optimizer's profiling hook (added to the class by the first Adam built): unwrap goes past it.
_STEP = inspect.unwrap(torch.optim.Adam.step)
_ADD_PARAM_GROUP = inspect.unwrap(torch.optim.Optimizer.add_param_group)
_ZERO_GRAD = inspect.unwrap(torch.optim.Optimizer.zero_grad)
_STATE_DICT = inspect.unwrap(torch.optim.Optimizer.state_dict)
_LOAD_STATE_DICT = inspect.unwrap(torch.optim.Optimizer.load_state_dict)


class _EagerAdam(torch.optim.Adam):
    """``torch.optim.Adam`` without the ``torch._dynamo`` import of its wrappers (see the module docstring)."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _ADD_PARAM_GROUP(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _ZERO_GRAD(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return _STATE_DICT(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _LOAD_STATE_DICT(self, state_dict)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        # What _use_grad_for_differentiable does, less its graph breaks: the update runs without autograd.
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return _STEP(self, closure)


def make_adam(params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """Fused Adam with learning rate ``lr``: the updates and state dict of ``torch.optim.Adam(params, lr=lr,
    fused=True)``, without importing ``torch._dynamo`` (1.5–2 s of every stage's start-up)."""
    return _EagerAdam(params, lr=lr, fused=True)


SGD_MOMENTUM = 0.9  # the usual heavy-ball momentum (Sutskever et al. 2013)


def make_sgd(params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 (torch's own; its first call imports ``torch._dynamo``, a second of start-up that only
    a run choosing SGD pays)."""
    return torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM)


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {"adam": make_adam, "sgd": make_sgd}


def make_optimizer(name: str, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                   lr: float) -> torch.optim.Optimizer:
    """The optimizer ``name`` of :data:`OPTIMIZERS` (params.yaml `train.optimizer`) over ``params``."""
    return OPTIMIZERS[name](params, lr)
