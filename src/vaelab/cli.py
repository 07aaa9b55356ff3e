"""What every stage command shares: logging set-up and turning known failures into one clear line."""

from __future__ import annotations

import logging
import sys
from typing import Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger("vaelab")


def expected_errors() -> tuple[type[BaseException], ...]:
    """Failures a user can act on: reported as one message and a non-zero exit, not a traceback."""
    from mlflow.exceptions import MlflowException

    from vaelab.config import ConfigError
    from vaelab.data import DataError
    from vaelab.download import DownloadError
    from vaelab.models import CheckpointError
    from vaelab.report import ReportError
    from vaelab.tracking import TrackingError
    from vaelab.train import NonFiniteLossError

    return (ConfigError, DataError, DownloadError, CheckpointError, TrackingError, NonFiniteLossError,
            MlflowException, ReportError)


def run_stage(name: str, work: Callable[[], T]) -> T:
    """Run a stage's work; on an expected failure log ``<stage>: error: ...`` and exit 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return work()
    except expected_errors() as err:
        log.error("%s failed: %s", name, err)
        sys.exit(1)
