#!/usr/bin/env bash
# One prepared GPU check for the performance issue (hsd.kernels.if_scan + harness.bench).
# Run from the repository root on a lent GPU machine, with the wheels carried in ./wheels:
#   run(command="bash results/bench/gpu_check.sh", carry=["wheels"], timeout_s=600)
# Budget: ~5-6 minutes expected, 10 at worst (every timeout hit); steps run in priority order.
# Everything it measures lands in $OUT (default ./out/gpu-check).
# Each step has its own timeout and a failure does not stop the later steps.
set -u
OUT=${OUT:-out/gpu-check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

step "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
python - <<'PY' | tee "$OUT/env.txt"
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
try:
    import triton; print("triton", triton.__version__)
except Exception as e:
    print("triton absent:", e)
PY

step "install carried wheels (no index: the machine has no internet)"
# spikingjelly needs --no-deps: its declared deps (torchvision, torchaudio, tensorboard, ...)
# are not needed by spikingjelly.activation_based and would replace the machine's torch.
pipi() {  # a system Python may refuse plain installs (PEP 668): fall back to --user, then force
  pip install --no-index --find-links wheels/ --no-deps "$@" \
    || pip install --user --no-index --find-links wheels/ --no-deps "$@" \
    || pip install --break-system-packages --no-index --find-links wheels/ --no-deps "$@"
}
pipi spikingjelly loguru
python -c "import pytest" 2>/dev/null || pipi pytest pluggy iniconfig packaging pygments
python -c "import spikingjelly.activation_based, hsd.kernels; print('imports ok')"

step "GPU + CPU tests of the lean IF kernel (spikes/grads vs SpikingJelly, Triton on CUDA)"
timeout 120 python -m pytest tests/test_if_scan.py -q -p no:cacheprovider -rs \
  --junitxml="$OUT/pytest-if-scan.xml" | tee "$OUT/pytest-if-scan.txt"

step "bench train: bf16, channels_last, paper size (VGG-SNN, T=10, batch 128, 48x48)"
timeout 170 python -m harness.bench train --epoch-batches 20 \
  --out "$OUT/gpu-train-bf16.json" | tee "$OUT/gpu-train-bf16.txt"

step "bench packing: 1, 2, 4 trials per GPU, smoke and paper sizes"
timeout 180 python -m harness.bench packing --seconds 8 \
  --out "$OUT/gpu-packing.json" | tee "$OUT/gpu-packing.txt"

step "bench train: the lean neuron's torch loop instead of Triton (same floor)"
HSD_IF_SCAN_BACKEND=torch timeout 50 python -m harness.bench train \
  --impls floor,ours-lean,converted-lean --epoch-batches 0 --repeats 10 \
  --out "$OUT/gpu-train-bf16-lean-torchloop.json" | tee "$OUT/gpu-train-bf16-lean-torchloop.txt"

step "bench train: fp32 SNNs against the bf16 floor (the issue's fp32 anchors)"
timeout 80 python -m harness.bench train --precision fp32 --floor-precision bf16 \
  --impls floor,ours-sj,ours-lean,anchor-sj,anchor-loop --epoch-batches 0 --repeats 10 \
  --out "$OUT/gpu-train-fp32.json" | tee "$OUT/gpu-train-fp32.txt"

step "done"
ls -la "$OUT"
