#!/usr/bin/env bash
# The GPU check of the benchmarks (harness.bench) and of the lean IF kernel (hsd.kernels).
# Run from the repository root on a machine with a CUDA GPU, after `pip install -e ".[dev]"`:
#   bash results/bench/gpu_check.sh            # results in out/gpu-check
#   OUT=/some/folder bash results/bench/gpu_check.sh
# Without internet, put the missing wheels in ./wheels first (see results/bench/README.md).
# Each step has its own timeout (at most ~11 min in all) and a failure does not stop the later ones.
set -u
OUT=${OUT:-out/gpu-check}
PY=${PYTHON:-python}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

step "install carried wheels, if any (./wheels, no index)"
if [ -d wheels ]; then
  # spikingjelly needs --no-deps: its declared torchvision/torchaudio/tensorboard are not needed
  # by spikingjelly.activation_based and their wheels may replace the installed torch.
  pipi() {  # a system Python may refuse plain installs (PEP 668): fall back to --user, then force
    $PY -m pip install --no-index --find-links wheels/ --no-deps "$@" \
      || $PY -m pip install --user --no-index --find-links wheels/ --no-deps "$@" \
      || $PY -m pip install --break-system-packages --no-index --find-links wheels/ --no-deps "$@"
  }
  $PY -c "import spikingjelly" 2>/dev/null || pipi spikingjelly loguru
  $PY -c "import pytest" 2>/dev/null || pipi pytest pluggy iniconfig packaging pygments
fi
$PY -c "import spikingjelly.activation_based, hsd.kernels; print('imports ok')" \
  || echo "missing packages: run 'pip install -e .[dev]' (see results/bench/README.md)"

step "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
$PY - <<'EOF' | tee "$OUT/env.txt"
from hsd.device import device_name, pick_device, versions
from hsd.kernels import triton_available
print("device", device_name(pick_device("auto")))
print(versions() | {"lean_if_triton": triton_available()})
EOF

step "lean IF kernel vs SpikingJelly: spikes and gradients on CUDA (Triton and torch loop)"
timeout 120 $PY -m pytest tests/test_if_scan.py -q -p no:cacheprovider -rs \
  --junitxml="$OUT/pytest-if-scan.xml" | tee "$OUT/pytest-if-scan.txt"

step "bench train: bf16, channels_last, paper size (VGG-SNN, T=10, batch 128, 48x48)"
timeout 170 $PY -m harness.bench train --epoch-batches 20 \
  --out "$OUT/gpu-train-bf16.json" | tee "$OUT/gpu-train-bf16.txt"

step "bench packing: 1, 2, 4 trials per GPU, smoke and paper sizes"
timeout 180 $PY -m harness.bench packing --seconds 8 \
  --out "$OUT/gpu-packing.json" | tee "$OUT/gpu-packing.txt"

step "bench train: the lean neuron's torch loop instead of Triton (same floor)"
HSD_IF_SCAN_BACKEND=torch timeout 50 $PY -m harness.bench train \
  --impls floor,ours-lean,converted-lean --epoch-batches 0 --repeats 10 \
  --out "$OUT/gpu-train-bf16-lean-torchloop.json" | tee "$OUT/gpu-train-bf16-lean-torchloop.txt"

step "bench train: fp32 SNNs against the bf16 floor"
timeout 80 $PY -m harness.bench train --precision fp32 --floor-precision bf16 \
  --impls floor,ours-sj,ours-lean,anchor-sj,anchor-loop --epoch-batches 0 --repeats 10 \
  --out "$OUT/gpu-train-fp32.json" | tee "$OUT/gpu-train-fp32.txt"

step "bench data: frame integration and frame-cache reads (CPU side of the data path)"
timeout 60 $PY -m harness.bench data --out "$OUT/data.json" | tee "$OUT/data.txt"

step "done"
ls -la "$OUT"
