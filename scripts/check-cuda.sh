#!/usr/bin/env bash
# Type-checks and lints the `cuda` feature (all targets, tests included) on a machine without a
# GPU or CUDA toolkit: NVIDIA's CUDA 13 wheels provide nvcc and headers (as in build-cuda.sh), and
# nothing is linked, so no driver library is needed. CI runs it; building a binary is
# build-cuda.sh's job.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${KESTREL_CUDA_CACHE:-$PWD/.cache/cuda}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_CUDA:-$PWD/target-cuda}
# shellcheck source=scripts/cuda-env.sh
source scripts/cuda-env.sh "$CACHE"
cargo clippy --features cuda --all-targets -- -D warnings
echo "check-cuda: the cuda feature type-checks and lints clean (sm_${CUDA_COMPUTE_CAP})"
