#!/usr/bin/env bash
# The CUDA path in under 5 minutes, for a machine with a GPU (never run by CI; the README says whether it has
# been run): the training benchmark, one tiny `dvc repro` with `device: cuda`, and the tests marked `cuda`.
# Usage, from a checkout with .venv set up (make setup) and MNIST at $VAELAB_MNIST_MIRROR:
#     bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" PYTHONPATH="$PWD/src:$PWD"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA here'; print('GPU:', torch.cuda.get_device_name())"

echo "== tests marked cuda"
python -m pytest -q -n 0 -m cuda tests/test_cuda.py

echo "== one tiny dvc repro with device: cuda (the post's three models, one epoch, 2 seeds)"
work="$(mktemp -d)"
git clone -q . "$work/project"
cd "$work/project"
python - <<'PY'
import yaml
p = yaml.safe_load(open("params.yaml"))
p.update(device="cuda", seeds=[1, 2])
p["data"].update(train_size=6000, test_size=1000)
p["train"]["epochs"] = 1
p["models"] = {k: v for k, v in p["models"].items() if k in ("ae", "vae_mse", "vae_bce")}
p["claims"] = [c for c in p["claims"] if c["model"] in p["models"] and c["baseline"] in p["models"]]
p["inference"]["models"] = ["vae_mse", "vae_bce"]
p["evaluate"].update(likelihood_images=500, quadrature_images=20, sample_images=1000, binarized_images=50)
p["quadrants"].update(test_images=200, epochs=1, baseline_epochs=1)
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
start=$SECONDS
dvc repro -q
echo "tiny dvc repro on CUDA: $((SECONDS - start)) s"
cat .vaelab/stage-times.jsonl
cd - >/dev/null

echo "== training benchmark on CUDA (S = 3 and 10 seeds stacked, one process)"
(cd "$work/project" && python - <<'PY'
import time, torch
from benchmarks.speed import build, macs
from vaelab import models
from vaelab.core.config import TrainConfig
from vaelab.data.mnist import load_split
from vaelab.training.loop import fit_stacked
train = load_split("data", "train", 60000)
flop = 6 * macs(build())
for s in (1, 3, 10):
    m = models.stack([build(i) for i in range(s)]) if s > 1 else build(0)
    seeds = list(range(s))
    fit_stacked(m, tuple(t[:6400] for t in train), None, TrainConfig(1, 128, 1e-3), seeds=seeds, device=torch.device("cuda"))
    torch.cuda.synchronize(); t = time.perf_counter()
    fit_stacked(m, train, None, TrainConfig(1, 128, 1e-3), seeds=seeds, device=torch.device("cuda"))
    torch.cuda.synchronize(); dt = time.perf_counter() - t
    print(f"S={s:2d}: {s * 60000 / dt:9.0f} images/s, {s * 60000 * flop / dt / 1e9:7.0f} GFLOP/s")
PY
)
rm -rf "$work"
