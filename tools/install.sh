#!/usr/bin/env bash
# Set up TTSA-SLAM in a virtual environment (.venv) on a fresh Debian/Ubuntu machine. Idempotent: a second
# run only checks what is there. Usage: bash tools/install.sh [PYTHON]   (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}

# Open3D links against libusb-1.0, which minimal Debian images lack.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  echo "installing libusb-1.0-0 (needed by Open3D) ..."
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first, pinned, so that pip does not pull a multi-GB CUDA build on a CPU machine where a CPU wheel of
# this version is available (set TORCH_SPEC to choose another build, e.g. TORCH_SPEC="torch==2.13.0").
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[test]"
echo "TTSA-SLAM installed in .venv (activate with: . .venv/bin/activate)"
