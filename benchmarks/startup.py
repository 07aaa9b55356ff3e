"""What a stage pays before its work, and what DVC pays before any stage (not a test: figures depend on the
machine and its load; the study's target is 3 s on a 2-core machine).

Definitions, all wall-clock seconds, each the median of ``repeats`` fresh processes:

- ``stages``: for each program of dvc.yaml, run with its exact command line there (first model of a
  ``foreach``; the ``stages/*.py`` outside dvc.yaml with their defaults), from just before the process is
  spawned until :func:`vaelab.pipeline.stage.run_stage` is about to call the stage's work: ``VAELAB_EXIT_BEFORE_WORK``
  makes it write the wall clock and its loaded modules there and exit without reading or writing anything. It includes the interpreter's start and every module-level
  import; ``heavy`` lists the heavy packages already imported by then.
- ``first_use``: start-up costs the work pays on its first call, each in a fresh process after ``import torch``
  (so torch's own 2-3 s is not counted twice): ``import mlflow``; ``tracking.setup`` on an existing SQLite
  store; building and stepping ``torch.optim.Adam(fused=True)`` (which imports ``torch._dynamo``) and
  :func:`vaelab.training.optim.make_adam` (which does not).
- ``step_ms``: milliseconds per training step (forward, backward, optimizer step) of the default MLP VAE
  (784-512-256-128-4 encoder, 2-128-256-512-784 decoder), batch 128, for each optimizer, at 1 and 2 threads
  (median over timed blocks after a warm-up).
- ``dvc``: ``dvc --version`` (DVC's own start-up), and a no-op ``dvc repro`` (everything up to date) in a
  throw-away git + DVC project with one tiny stage.

Run from the project root::

    PYTHONPATH=src python benchmarks/startup.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torch._dynamo", "mlflow", "matplotlib", "scipy", "pandas", "sqlalchemy", "dvc", "PIL", "sklearn")
PY = sys.executable


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONDONTWRITEBYTECODE="1")
    return env


def stage_commands() -> dict[str, list[str]]:
    """Each stage program's command line as dvc.yaml runs it (a ``foreach`` stage with its first key)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    out = {}
    for name, stage in stages.items():
        if "foreach" in stage:
            keys = stage["foreach"]
            if isinstance(keys, str):  # ${models}
                keys = params[keys.strip("${}")]
            key = next(iter(keys))
            cmd, name = stage["do"]["cmd"].replace("${key}", str(key)), f"{name}@{key}"
        else:
            cmd = stage["cmd"]
        out[name] = cmd.removeprefix("PYTHONPATH=src ").split()
    # The programs that run outside the pipeline (after `dvc exp run` sweeps), with their defaults.
    for program in sorted((ROOT / "stages").glob("*.py")):
        if not any(program.name in cmd for cmd in map(" ".join, out.values())):
            out[program.stem] = ["python", f"stages/{program.name}"]
    return out


def time_to_work(cmd: list[str], repeats: int) -> dict:
    """Median seconds from spawning ``cmd`` until its run_stage would call the work, and what it had imported."""
    times, modules = [], []
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.json"
        for _ in range(repeats):
            env = {**_env(), "VAELAB_EXIT_BEFORE_WORK": str(probe)}
            start = time.time()
            subprocess.run([PY if cmd[0] == "python" else cmd[0], *cmd[1:]], cwd=ROOT, env=env, check=True,
                           capture_output=True)
            seen = json.loads(probe.read_text())
            times.append(seen["time"] - start)
            modules = seen["modules"]
    return {"seconds": round(statistics.median(times), 2), "heavy": [m for m in HEAVY if m in modules]}


def _fresh(code: str, repeats: int) -> float:
    """Median seconds of ``code`` (after ``import torch``, which is not timed) in fresh interpreters."""
    script = f"import time, torch\nstart = time.perf_counter()\n{code}\nprint(time.perf_counter() - start)\n"
    runs = [float(subprocess.run([PY, "-c", script], cwd=ROOT, env=_env(), check=True, capture_output=True,
                                 text=True).stdout.split()[-1]) for _ in range(repeats)]
    return round(statistics.median(runs), 2)


def first_use(repeats: int) -> dict:
    step = ("m = torch.nn.Linear(8, 8)\nopt = {}\nm(torch.rand(2, 8)).sum().backward()\nopt.step()\n"
            "opt.zero_grad()\nopt.state_dict()\nimport sys\nassert ('torch._dynamo' in sys.modules) == {}")
    with tempfile.TemporaryDirectory() as tmp:
        setup = (f"import os\nos.environ['MLFLOW_TRACKING_URI'] = 'sqlite:///{tmp}/mlflow.db'\n"
                 "from vaelab import tracking\ntracking.setup('startup')")
        _fresh(setup, 1)  # creates the store's schema once: a stage normally finds it there
        return {
            "import mlflow": _fresh("import mlflow", repeats),
            "tracking.setup (existing store, incl. import mlflow)": _fresh(setup, repeats),
            "torch.optim.Adam(fused=True): build + first step": _fresh(
                step.format("torch.optim.Adam(m.parameters(), lr=1e-3, fused=True)", True), repeats),
            "vaelab.training.optim.make_adam: build + first step": _fresh(
                "from vaelab.training.optim import make_adam\n" + step.format("make_adam(m.parameters(), 1e-3)", False),
                repeats),
        }


def step_ms(threads: int, steps: int = 60, blocks: int = 5) -> dict[str, float]:
    """Milliseconds per VAE training step with each optimizer, at ``threads`` CPU threads."""
    import torch

    from vaelab import models
    from vaelab.training.optim import make_adam

    torch.set_num_threads(threads)
    spec = models.spec_from_dict({"kind": "vae", "likelihood": {"name": "bernoulli"}, "latent_dim": 2,
                                  "hidden": [512, 256, 128]}, "benchmark")
    x = (torch.rand(128, 784, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    y = torch.zeros(128, dtype=torch.long)
    makers = {"make_adam": lambda p: make_adam(p, 1e-3),
              "Adam(fused=True)": lambda p: torch.optim.Adam(p, lr=1e-3, fused=True),
              "Adam() (foreach)": lambda p: torch.optim.Adam(p, lr=1e-3)}
    trained = {}
    for name, make in makers.items():
        model = models.build(spec, seed=0)
        trained[name] = (model, make(model.parameters()))

    def run(name: str, n: int) -> None:
        model, opt = trained[name]
        for _ in range(n):
            loss = model.loss(x, y)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    per_block: dict[str, list[float]] = {name: [] for name in makers}
    for name in makers:
        run(name, 10)
    # Blocks interleaved across the optimizers, so a change in the machine's load hits them alike.
    for _ in range(blocks):
        for name in makers:
            start = time.perf_counter()
            run(name, steps)
            per_block[name].append((time.perf_counter() - start) / steps * 1e3)
    return {name: round(statistics.median(times), 2) for name, times in per_block.items()}


def dvc_times(repeats: int) -> dict[str, float]:
    """``dvc --version`` and a no-op ``dvc repro`` in a throw-away project, in seconds."""
    dvc = str(Path(PY).with_name("dvc"))

    def timed(args: list[str], cwd: Path) -> float:
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(args, cwd=cwd, check=True, capture_output=True)
            runs.append(time.perf_counter() - start)
        return round(statistics.median(runs), 2)

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        for args in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "config", "core.analytics", "false"]):
            subprocess.run(args, cwd=project, check=True, capture_output=True)
        (project / "in.txt").write_text("1\n")
        (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"copy": {
            "cmd": "cp in.txt out.txt", "deps": ["in.txt"], "outs": ["out.txt"]}}}))
        subprocess.run([dvc, "repro", "-q"], cwd=project, check=True, capture_output=True)
        return {"dvc --version": timed([dvc, "--version"], project),
                "dvc repro (no-op)": timed([dvc, "repro"], project),
                "dvc status (no-op)": timed([dvc, "status"], project)}


def run(repeats: int = 3) -> dict:
    """Every figure of the module docstring, as one dict."""
    return {"stages": {name: time_to_work(cmd, repeats) for name, cmd in stage_commands().items()},
            "first_use": first_use(repeats),
            "step_ms": {f"{t} thread{'s' if t > 1 else ''}": step_ms(t) for t in (1, 2)},
            "dvc": dvc_times(repeats)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
