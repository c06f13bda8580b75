#!/usr/bin/env bash
# Builds the `cuda` feature of kestrel on a machine WITHOUT a GPU (or without a CUDA toolkit), from
# NVIDIA's CUDA 13 wheels on PyPI. The binary needs an R580+ driver (CUDA 13) where it runs.
#   CUDA_COMPUTE_CAP=87 scripts/build-cuda.sh   # Jetson Orin (build natively on the Jetson: aarch64)
#   CUDA_COMPUTE_CAP=90 scripts/build-cuda.sh   # H100 / H200
# Output: target-cuda/release/kestrel (its own target dir: the cuda feature rebuilds Candle).
# On a Jetson with JetPack's own toolkit, skip this script: `cargo build --release --features cuda`.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${KESTREL_CUDA_CACHE:-$PWD/.cache/cuda}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_CUDA:-$PWD/target-cuda}

# shellcheck source=scripts/cuda-env.sh
source scripts/cuda-env.sh "$CACHE"

# The driver library (libcuda.so.1) ships with the driver, not in any wheel: link against a stub
# that defines every cu* symbol cudarc uses; the real driver replaces it at run time.
make_stub() {
  local rlib
  rlib=$(ls "$CARGO_TARGET_DIR"/release/deps/libcudarc-*.rlib 2>/dev/null | head -1) || true
  [ -n "$rlib" ] || return 1
  nm -u --format=posix "$rlib" 2>/dev/null | awk '{print $1}' | grep -E '^cu[A-Z]' | sort -u \
    | awk '{print "void " $1 "(void){}"}' > "$CACHE/libcuda-stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$R/lib64/stubs/libcuda.so" "$CACHE/libcuda-stub.c"
}
[ -f "$R/lib64/stubs/libcuda.so" ] || make_stub || true
if ! cargo build --release --features cuda "$@"; then
  echo "build-cuda: first link may fail before the libcuda stub exists; making it and relinking" >&2
  make_stub
  cargo build --release --features cuda "$@"
fi
echo "build-cuda: $CARGO_TARGET_DIR/release/kestrel (sm_${CUDA_COMPUTE_CAP})"
