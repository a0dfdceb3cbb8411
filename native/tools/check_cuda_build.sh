#!/usr/bin/env bash
# Compiles the CUDA backend without needing a GPU: cuBLAS headers and libraries from
# MGL_CUBLAS_ROOT, the CUDA toolkit, or the nvidia-cublas wheel in <repo>/.venv-cuda (installed
# here if missing); configures build-cuda/ with MGL_CUDA=ON; builds the runtime with the backend
# linked in plus the CUDA tests; runs them (without a GPU: the device query fails with a readable
# reason and the CPU backend is chosen).
# Environment: MGL_CUDA_BUILD_DIR (default <repo>/build-cuda), MGL_CUBLAS_ROOT.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${MGL_CUDA_BUILD_DIR:-$root/build-cuda}"
export PATH="/usr/local/cuda/bin:$PATH"

cublas_root="${MGL_CUBLAS_ROOT:-}"
if [ -z "$cublas_root" ] && [ -f /usr/local/cuda/include/cublas_v2.h ]; then
  cublas_root=/usr/local/cuda
fi
if [ -z "$cublas_root" ]; then
  venv="$root/.venv-cuda"
  wheel_dir() { ls -d "$venv"/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -n 1; }
  if [ -z "$(wheel_dir)" ] || [ ! -f "$(wheel_dir)/include/cublas_v2.h" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --retries 1 nvidia-cublas
  fi
  cublas_root="$(wheel_dir)"
fi
echo "cuBLAS from $cublas_root"

generator=()
if command -v ninja >/dev/null 2>&1 && [ ! -f "$build/Makefile" ]; then
  generator=(-G Ninja)
fi
cmake -S "$root/native" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMGL_CUDA=ON \
  -DMGL_CUBLAS_ROOT="$cublas_root" ${CMAKE_CUDA_ARCHITECTURES:+-DCMAKE_CUDA_ARCHITECTURES="$CMAKE_CUDA_ARCHITECTURES"}
cmake --build "$build" -j"$(nproc)" --target megalodon_shared megalodon test_cuda_plan test_cuda_backend cuda_op_check
ctest --test-dir "$build" --output-on-failure -R '^test_cuda_'
