#!/usr/bin/env bash
# One prepared GPU check of the learned frontends. On a machine with CUDA it
#   1. installs the project (tools/install.sh, or into the current Python with GPU_CHECK_PYTHON=python3),
#   2. runs the tests that need CUDA (kernels against their references, device preprocessing),
#   3. benchmarks cut3r / ttt3r / ttsa3r at 512x384 (random weights, released 512-DPT architecture) in
#      fp32 and bf16, eager and torch.compile: frames/s, peak memory per frame, memory drift from frame 10,
#   4. runs full SLAM (ttsa3r, bf16) on a rendered 512x384 sequence with a random-weight checkpoint,
# and writes one report: $GPU_CHECK_OUT/report.json and report.md (default outputs/gpu_check).
# On a machine without CUDA it stops at once with a one-line message.
#
# Knobs (environment): GPU_CHECK_FRAMES (frames per benchmark, default 200), GPU_CHECK_LONG (frames of the
# long ttsa3r bf16 memory run, default 1000), GPU_CHECK_SLAM_FRAMES (default 300), GPU_CHECK_OUT.
# Budget: under 8 minutes on one H100/H200 with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${GPU_CHECK_OUT:-outputs/gpu_check}
FRAMES=${GPU_CHECK_FRAMES:-200}
LONG=${GPU_CHECK_LONG:-1000}
SLAM_FRAMES=${GPU_CHECK_SLAM_FRAMES:-300}

if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
  PY=$GPU_CHECK_PYTHON
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=python3
fi

cuda_in_torch() { "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }
no_cuda() {
  echo "error: tools/gpu_check.sh needs a CUDA GPU ($1)" >&2
  exit 2
}
# CUDA first: without it nothing below means anything. Install only where a driver answers.
if ! cuda_in_torch; then
  if "$PY" -c 'import torch' 2>/dev/null; then
    no_cuda "torch.cuda.is_available() is false on this machine"
  fi
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || no_cuda "no NVIDIA driver answers nvidia-smi"
  TORCH_SPEC=${TORCH_SPEC:-torch} bash tools/install.sh
  PY=.venv/bin/python
  cuda_in_torch || no_cuda "the installed torch has no CUDA support; set TORCH_SPEC to a CUDA build"
fi
mkdir -p "$OUT"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
START=$(date +%s)

echo "== GPU tests"
"$PY" -m pytest -q tests/kernels tests/cut3r/test_bf16_cpu.py tests/cut3r/test_preprocess.py 2>&1 | tee "$OUT/tests.log" | tail -n 3

echo "== frontend benchmarks (512x384, $FRAMES frames)"
for autocast in none bf16; do
  for compile in "" "--compile"; do
    tag="${autocast}${compile:+_compiled}"
    "$PY" tools/bench_frontend.py --size 512 --device cuda --frames "$FRAMES" --warmup 5 \
      --autocast "$autocast" $compile --json "$OUT/bench_$tag.json" | tail -n 4
  done
done
echo "== STream3R benchmark (518x392, causal and window, $FRAMES frames)"
"$PY" tools/bench_frontend.py --frontend stream3r --size full --device cuda --frames "$FRAMES" --warmup 5 \
  --json "$OUT/bench_stream3r.json" | tail -n 3
echo "== memory over $LONG frames (ttsa3r, bf16)"
"$PY" tools/bench_frontend.py --size 512 --device cuda --frames "$LONG" --warmup 5 --rules ttsa3r \
  --autocast bf16 --json "$OUT/bench_long.json" | tail -n 2

echo "== full SLAM (ttsa3r, bf16, $SLAM_FRAMES rendered frames)"
"$PY" - "$OUT" <<'PY'
import sys
from pathlib import Path

import torch

from frontends.cut3r.checkpoint import write_safetensors
from frontends.cut3r.config import CUT3R_512_DPT
from frontends.cut3r.model.net import Cut3rNet
from frontends.cut3r.model_string import format_model_string

out = Path(sys.argv[1])
torch.manual_seed(0)
net = Cut3rNet(CUT3R_512_DPT)
write_safetensors(out / "random_512_dpt.safetensors", net.state_dict(), format_model_string(CUT3R_512_DPT))
PY
"$PY" -m slam.cli demo --quiet --out "$OUT/slam" --frames "$SLAM_FRAMES" --size 512x384 viz=off >/dev/null
"$PY" -m slam.cli run --quiet --data "$OUT/slam/data" --out "$OUT/slam_ttsa3r" frontend=ttsa3r \
  "frontend.cut3r.checkpoint=$OUT/random_512_dpt.safetensors" frontend.cut3r.device=cuda \
  frontend.cut3r.autocast=bf16 viz=off | tail -n 2

"$PY" tools/gpu_report.py "$OUT" --started "$START"
echo "report: $OUT/report.json, $OUT/report.md"
