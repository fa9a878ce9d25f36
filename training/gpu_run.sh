#!/usr/bin/env bash
# The one command for a GPU machine (run from the repository root there, after
# training/gpu_pack.sh here; carry .gpu and .whl). Trains unet3d_mrbrains for MINUTES from the
# committed checkpoint INIT and leaves snapshots, log.csv and record.json in $OUT.
# Usage: bash training/gpu_run.sh [MINUTES] [INIT]
set -euo pipefail
minutes=${1:-8}
init=${2:-weights/unet3d_mrbrains/2.0.0/model.weights.h5}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 training/gpu_train.py --bank .gpu/bank.npz --out "${OUT:-gpu-out}" --minutes "$minutes" \
  --batch-size 8 --workers 15 --init "$init" 2>&1 | tee "${OUT:-gpu-out}/train.log"
