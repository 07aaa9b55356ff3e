"""What every stage program (``stages/*.py``) shares: turning known failures into one clear line and a
non-zero exit, and publishing outputs only when the whole stage succeeded.

A stage writes its outputs into a staging folder laid out like the project (``staging/models/...``,
``staging/metrics/...``), records them, and then :func:`publish` moves every staged file into place.
If anything fails before that, the staging folder is removed and no output is half-written or stale.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from vaelab.core import errors
from vaelab.core.device import PARALLEL_MIN_GFLOP, resolve_device

T = TypeVar("T")
log = logging.getLogger("vaelab")


def expected_errors() -> tuple[type[BaseException], ...]:
    """Failures a user can act on: reported as one message and a non-zero exit, not a traceback.

    Called only once an exception reaches :func:`run_stage` (an ``except`` clause is evaluated then).
    """
    known = errors.EXPECTED
    # An MlflowException can only come from a process that imported mlflow; a stage that failed before
    # recording anything (or never records) reports its error without 2 s of importing mlflow first.
    mlflow_exceptions = sys.modules.get("mlflow.exceptions")
    return known + (mlflow_exceptions.MlflowException,) if mlflow_exceptions else known


def _interrupt(signum: int, frame: object) -> None:
    from vaelab import tracking

    name = signal.Signals(signum).name
    if not tracking.hold_interrupt(name):  # held: raised once the tracking call in progress is done
        raise KeyboardInterrupt(name)


LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"



def parallel_map(fn: Callable[..., T], calls: list[tuple], gflop_per_call: float) -> list[T]:
    """``[fn(*c) for c in calls]``, in parallel worker processes when the work pays for their start-up.

    Either way each call runs with one CPU thread (set here, or in each worker), so results are the same.
    Workers fork from a fresh server process that has imported torch and mlflow once (``forkserver``): no
    OpenMP or database state of the stage is inherited, and each worker starts in milliseconds instead of
    re-importing for seconds. They log like the stage. One thread per worker everywhere, so a result never
    depends on how many workers ran beside it: parallel is bit-identical to sequential. With more calls than
    cores the OS shares the cores and all calls end together.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    if len(calls) == 1 or gflop_per_call < PARALLEL_MIN_GFLOP:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [fn(*c) for c in calls]
        finally:
            torch.set_num_threads(threads)
    workers = min(len(calls), 2 * (os.cpu_count() or 1))
    context = multiprocessing.get_context("forkserver")
    # (vaelab.training.optim.make_adam never imports torch._dynamo, so the workers need not either.)
    context.set_forkserver_preload(["torch", "mlflow", "vaelab.models", "vaelab.training.loop", "vaelab.measures.metrics"])
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        return list(pool.map(fn, *zip(*calls)))


def map_calls(fn: Callable[..., T], calls: list[tuple], gflop_per_call: float, device: str) -> list[T]:
    """``[fn(*c) for c in calls]``: one after another on CUDA (one device for all), else :func:`parallel_map`."""
    if resolve_device(device).type == "cuda":
        return [fn(*c) for c in calls]
    return parallel_map(fn, calls, gflop_per_call)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


# benchmarks/startup.py sets this to a file path: the stage writes there when it got to its work (wall clock,
# and the modules it had imported by then) and exits 0 without doing the work.
EXIT_BEFORE_WORK = "VAELAB_EXIT_BEFORE_WORK"


def _exit_before_work(path: str) -> None:
    import json

    Path(path).write_text(json.dumps({"time": time.time(), "modules": sorted(sys.modules)}))
    sys.exit(0)


def run_stage(name: str, work: Callable[[], T]) -> T:
    """Run a stage's work; on an expected failure log ``<stage>: error: ...`` and exit 1.

    SIGTERM (e.g. from DVC or a scheduler) is handled like Ctrl-C, so clean-up code runs and the
    MLflow run is marked KILLED; finished epochs stay in checkpoints/ for the next run to resume. Neither
    interrupts a tracking call half-way (vaelab.tracking.hold_interrupt).
    """
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if os.environ.get(EXIT_BEFORE_WORK):
        _exit_before_work(os.environ[EXIT_BEFORE_WORK])
    start = time.perf_counter()
    try:
        result = work()
        # One line per stage, so the pipeline's time budget can be read from `dvc repro`'s output, and one line
        # in .vaelab/stage-times.jsonl (ignored by git and DVC) for `make bench`'s study table.
        seconds = time.perf_counter() - start
        log.info("%s done in %.1f s", name, seconds)
        record_time(name, seconds)
        return result
    except expected_errors() as err:
        log.error("%s failed: %s", name, err)
        sys.exit(1)
    except KeyboardInterrupt as err:
        log.error("%s interrupted (%s); re-run it to resume from the last finished epoch", name, err or "SIGINT")
        sys.exit(130)


TIMES = Path(".vaelab") / "stage-times.jsonl"


def record_time(name: str, seconds: float, root: Path = Path(".")) -> None:
    """Append a finished stage's wall time to ``.vaelab/stage-times.jsonl`` (read by benchmarks/study.py)."""
    import json

    path = root / TIMES
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps({"stage": name, "seconds": round(seconds, 2), "at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")


SPEEDS = Path(".vaelab") / "train-speed.jsonl"


PARTS = Path(".vaelab") / "evaluate-parts.jsonl"


def record_parts(name: str, per_call: list[dict[str, float]], root: Path = Path(".")) -> None:
    """Append the seconds each part of a stage took, per call (an evaluation's groups, per seed), to
    ``.vaelab/evaluate-parts.jsonl``: ``make bench`` prints each part's share of the stage."""
    import json

    path = root / PARTS
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps({"stage": name, "parts": [{k: round(v, 2) for k, v in p.items()} for p in per_call],
                            "at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")


@contextlib.contextmanager
def measured_speed(name: str, images: int, gflop: float, root: Path = Path(".")) -> Iterator[None]:
    """Time the block (a training of ``images`` seed-images and ``gflop`` of arithmetic: every seed's epochs with
    their test passes, not the start or the publishing); log its throughput and its share of a matrix-product peak
    measured right after it, and append both to ``.vaelab/train-speed.jsonl`` (``make bench`` prints the last
    one beside its own figures). A resumed training counts all its epochs: its figure is then too high."""
    import json

    from vaelab.core.device import matmul_peak

    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    peak = matmul_peak(repeats=5)
    entry = {"stage": name, "images_per_s": round(images / seconds, 1), "gflop_per_s": round(gflop / seconds, 2),
             "peak_gflops": round(peak, 1), "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    log.info("%s: %d seed-images in %.1f s, %.0f images/s, %.0f GFLOP/s = %.0f%% of the %.0f GFLOP/s matmul peak "
             "measured now", name, images, seconds, images / seconds, gflop / seconds, 100 * gflop / seconds / peak, peak)
    path = root / SPEEDS
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(entry) + "\n")


@contextlib.contextmanager
def staging(root: Path, prefix: str) -> Iterator[Path]:
    """A temporary folder inside ``root`` (same file system: renames are atomic), always removed."""
    folder = Path(tempfile.mkdtemp(dir=root, prefix=f".{prefix}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def outputs(root: Path, prefix: str, replace: list[str] = ()) -> Iterator[Path]:
    """A staging folder (:func:`staging`) whose files are published into ``root`` (:func:`publish`, emptying the
    folders of ``replace`` first) when the block ends without an error: no half-written output, ever."""
    with staging(root, prefix) as staged:
        yield staged
        publish(staged, root, replace)


def publish(staged: Path, root: Path, replace: list[str] = ()) -> list[Path]:
    """Move every file under ``staged`` to the same relative path under ``root``.

    Folders in ``replace`` (relative to root) are emptied first, so no file of an earlier run survives
    in an output folder (e.g. a figure a model no longer draws).
    """
    for rel in replace:
        shutil.rmtree(root / rel, ignore_errors=True)
    moved = []
    for src in sorted(p for p in staged.rglob("*") if p.is_file()):
        dest = root / src.relative_to(staged)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(src, 0o644)  # mkstemp makes owner-only files; outputs are for everyone who reads the repo
        os.replace(src, dest)
        moved.append(dest)
    return moved
