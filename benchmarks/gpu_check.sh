#!/usr/bin/env bash
# Everything to measure when a GPU is at hand, in one run of at most 8 minutes (see gpu_check.py):
# the nvJPEG self-check, tile loaders and extraction (bench_tiles.py) and every model at 10k and
# 100k patches (bench_models.py); results in benchmarks/results/gpu_check/gpu_check.{json,md}.
#   bash benchmarks/gpu_check.sh                       # GPU node (cuda)
#   bash benchmarks/gpu_check.sh --device cpu --tiny   # anywhere, CI-sized (tests/test_gpu_check.py)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python benchmarks/gpu_check.py "$@"
