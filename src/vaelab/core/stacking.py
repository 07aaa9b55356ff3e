"""Seeds side by side: the conventions of a stacked model (:mod:`vaelab.models.layers`).

Every parameter and buffer of an S-seed model has a leading seed axis ``[S, ...]``, so a stacked model's state
is its seeds' single-seed states concatenated, and seed i's model is slice ``i:i+1`` of every tensor.
"""

from __future__ import annotations

import torch


def per_seed(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-seed scalar ``[S]`` shaped to broadcast against ``like`` (``[S, ...]``; a 0-d tensor when S = 1)."""
    if value.numel() == 1:
        return value.reshape(())
    return value.view(len(value), *[1] * (like.dim() - 1))


def stack_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The state of an S-seed model from S single-seed states (every tensor has a leading seed axis)."""
    return {k: torch.cat([s[k] for s in states]) for k in states[0]}


def unstack_state(state: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """Seed ``i``'s single-seed state of an S-seed model's state."""
    return {k: v[i:i + 1].clone() for k, v in state.items()}
