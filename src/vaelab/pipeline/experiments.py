"""The experiments of a DVC sweep, as `dvc exp show --json` gives them (the sweep reports read them; a DVC stage
cannot depend on the queue's experiments, so those reports are programs of their own, not stages)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from vaelab.core.errors import ReportError

COMMAND = "dvc exp show --json"


def exp_show(path: str | None) -> list[dict]:
    """The experiments, from ``path`` or from `dvc exp show --json` run here; a clear error if neither works."""
    try:
        if path:
            return json.loads(Path(path).read_text())
        return json.loads(subprocess.run(COMMAND.split(), capture_output=True, text=True, check=True).stdout)
    except subprocess.CalledProcessError as err:
        raise ReportError(f"`{COMMAND}` exited {err.returncode}: {err.stderr.strip()}") from None
    except (OSError, ValueError) as err:
        raise ReportError(f"cannot read the experiments from {path or COMMAND}: {err}") from None
