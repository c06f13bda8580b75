#!/usr/bin/env bash
# Sourced by build-cuda.sh and check-cuda.sh: installs NVIDIA's CUDA 13 wheels (pinned) into a
# cached venv once, lays them out as a CUDA root and exports CUDA_HOME/CUDA_ROOT/CUDA_PATH/PATH.
# usage: source scripts/cuda-env.sh CACHE_DIR   (sets V, R, CU)
CACHE=$1
V=$CACHE/venv
R=$CACHE/root
if [ ! -x "$V/bin/nvcc-ok" ]; then
  python3 -m venv "$V"
  "$V/bin/pip" install -q --disable-pip-version-check \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
  touch "$V/bin/nvcc-ok"; chmod +x "$V/bin/nvcc-ok"
fi
CU=$(echo "$V"/lib/python3*/site-packages/nvidia/cu13)
mkdir -p "$R/lib64/stubs"
for d in bin include nvvm; do ln -sfn "$CU/$d" "$R/$d"; done
for l in cudart.so.13 nvrtc.so.13 cublas.so.13 cublasLt.so.13 curand.so.10; do
  ln -sf "$CU/lib/lib$l" "$R/lib64/lib${l%%.so*}.so"
done
export CUDA_HOME=$R CUDA_ROOT=$R CUDA_PATH=$R PATH=$R/bin:$PATH
