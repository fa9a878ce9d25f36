#!/usr/bin/env bash
# The whole test suite: everything on TensorFlow (the default backend), then the backend-agnostic
# tests (layers, models, losses, metrics, marked "backend") again on JAX.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export TF_ENABLE_ONEDNN_OPTS=1 TF_CPP_MIN_LOG_LEVEL=3
echo "== pytest, KERAS_BACKEND=tensorflow"
KERAS_BACKEND=tensorflow "$PY" -m pytest -q -p no:cacheprovider tests "$@"
echo "== pytest -m backend, KERAS_BACKEND=jax"
KERAS_BACKEND=jax "$PY" -m pytest -q -p no:cacheprovider -m backend tests "$@"
