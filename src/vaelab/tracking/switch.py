"""Recording on or off: ``VAELAB_TRACKING=off`` runs every stage with nothing recorded and no store touched.

What a stage writes never depends on what it records (a test runs the stages both ways and compares the outputs
byte for byte). That is why no DVC stage depends on this package: an edit here re-runs no training and no
evaluation. Off, each recording call returns its neutral answer (no run, no earlier steps, no registered version)
and the stage goes on exactly as it does with a fresh store.
"""

from __future__ import annotations

import contextlib
import functools
import os
from types import SimpleNamespace
from typing import Any, Callable, TypeVar

from vaelab.core.errors import ConfigError

ENV = "VAELAB_TRACKING"
OFF_PREFIX = "off:"  # the ids of the runs that recording off does not make (a resumed attempt that records starts anew)
F = TypeVar("F", bound=Callable[..., Any])


def enabled() -> bool:
    """False when ``VAELAB_TRACKING=off`` (anything else, or unset, records)."""
    value = os.environ.get(ENV, "on").strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"environment variable {ENV} = {value!r}: expected 'on' or 'off'")
    return value == "on"


def unless_off(neutral: Any = None) -> Callable[[F], F]:
    """Decorate a recording call: off, it returns ``neutral`` (called, if callable, with the call's arguments)."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if enabled():
                return fn(*args, **kwargs)
            return neutral(*args, **kwargs) if callable(neutral) else neutral
        return call  # type: ignore[return-value]
    return wrap


def unless_off_context(neutral: Callable[..., Any]) -> Callable[[F], F]:
    """The same for a context manager: off, it yields ``neutral(*args)`` and records nothing."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if enabled():
                return fn(*args, **kwargs)
            return contextlib.nullcontext(neutral(*args, **kwargs))
        return call  # type: ignore[return-value]
    return wrap


def no_run(name: str, *_: Any, **__: Any) -> Any:
    """What ``tracked_run`` yields off: a run-shaped object whose id names no run."""
    return SimpleNamespace(info=SimpleNamespace(run_id=f"{OFF_PREFIX}{name}"))


def no_runs(names: list[str], *_: Any, **__: Any) -> list[str]:
    return [f"{OFF_PREFIX}{n}" for n in names]


def empty_set(*_: Any, **__: Any) -> set:
    return set()
