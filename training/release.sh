#!/usr/bin/env bash
# Train the five checkpoints that weights_manifest.json lists, with the settings they were
# published with, then bundle each preset under weights/ and add it to the manifest.
#
#   bash training/release.sh            # all five, one after the other (see README.md for costs)
#   bash training/release.sh cae3d_ixi  # some of them
#
# Each run writes runs/<name>/ (log.csv, TensorBoard, checkpoints, the preset). Publishing
# refuses to overwrite a version that is already in weights/: bump VERSION for new weights.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_ENABLE_ONEDNN_OPTS=1 TF_CPP_MIN_LOG_LEVEL=3
PY=${PYTHON:-.venv/bin/python}
VERSION=${VERSION:-1.0.0}
declare -A ARGS=(
  [unet3d_mrbrains]="--steps 450 --val-every 150 --subjects 48"
  [srnet3d_ixi]="--steps 120 --val-every 60 --subjects 32 --batch-size 2"
  [cae3d_ixi]="--steps 120 --val-every 60 --subjects 240"
  [resnet3d_ixi_age]="--steps 200 --val-every 100 --subjects 400 --val-cases 8 --test-cases 16"
  [resnet3d_ixi_sex]="--steps 200 --val-every 100 --subjects 400 --val-cases 8 --test-cases 16"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(unet3d_mrbrains srnet3d_ixi cae3d_ixi resnet3d_ixi_age resnet3d_ixi_sex)
for name in "${names[@]}"; do
  # shellcheck disable=SC2086
  "$PY" "training/$name.py" ${ARGS[$name]} --version "$VERSION" --out "runs/$name" -q
  .venv/bin/medzoo publish "runs/$name/presets/$name/$VERSION" weights \
    --update-manifest weights_manifest.json
done
