#!/usr/bin/env bash
# Prepare what a GPU run carries (both paths are ignored by git and named in `carry`):
#   .gpu/bank.npz  the training label maps (RAS, cropped), so the GPU machine needs no SimpleITK
#   .whl/          wheels the GPU machine lacks (keras and its optree, namex), for Python 3.12
# Usage: bash training/gpu_pack.sh LABEL_MAP_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
maps=${1:?usage: bash training/gpu_pack.sh LABEL_MAP_DIR (e.g. SynthSeg training_label_maps)}
PY=${PYTHON:-.venv/bin/python}
mkdir -p .gpu .whl
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
"$PY" - "$maps" <<'PYEOF'
import sys
from pathlib import Path

from medzoo.synth.anatomy import ATLAS_DIR
from medzoo.synth.randomized import LabelMapBank

held = ("training_seg_19", "training_seg_20")  # as LabelMapSource holds them out
files = [f for f in sorted(Path(sys.argv[1]).glob("*.nii*")) if f.name.split(".")[0] not in held]
LabelMapBank.from_files([*files, ATLAS_DIR / "ibsr_head.nii.gz"]).save(".gpu/bank.npz")
print(f"bank: {len(files) + 1} label maps -> .gpu/bank.npz")
PYEOF
keras_version=$("$PY" -c "import keras; print(keras.__version__)")
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "keras==$keras_version" optree namex
rm -f .whl/simpleitk-*.whl
du -sh .gpu .whl
