#!/usr/bin/env bash
# Set Sift up from a fresh clone and run the main job on the embedded default (Polars, local lake, SQLite Dagster).
#   bash deploy/quickstart.sh            # venv + install + `sift compile` + `sift demo`
#   bash deploy/quickstart.sh --no-demo  # venv + install + `sift compile` only (what CI does before the tests)
# Needs Python 3.11+; Java 17 for the Spark engine and its tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${SIFT_EXTRAS:-spark,dev,models}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"
echo "installed: $(.venv/bin/sift --version)"
# The numba kernels, compiled once into the installation's kernel cache (not on the first run of each process).
.venv/bin/sift compile
if [ "${1:-}" != "--no-demo" ]; then
  .venv/bin/sift demo
fi
