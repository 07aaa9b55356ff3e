"""What every stage command shares: logging set-up and turning known failures into one clear line."""

from __future__ import annotations

import logging
import signal
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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_stage(name: str, work: Callable[[], T]) -> T:
    """Run a stage's work; on an expected failure log ``<stage>: error: ...`` and exit 1.

    SIGTERM (e.g. from DVC or a scheduler) is handled like Ctrl-C, so clean-up code runs and the
    MLflow run is marked KILLED; finished epochs stay in checkpoints/ for the next run to resume.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return work()
    except expected_errors() as err:
        log.error("%s failed: %s", name, err)
        sys.exit(1)
    except KeyboardInterrupt as err:
        log.error("%s interrupted (%s); re-run it to resume from the last finished epoch", name, err or "SIGINT")
        sys.exit(130)
