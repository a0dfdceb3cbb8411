#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: builds the CUDA backend for that GPU's architecture, runs the
# CUDA tests (device query, a cuBLAS GEMM against the host), then cuda_op_check, which runs every
# kernel on random inputs against double-precision host references with per-op tolerances and
# prints one table row per check, and finally the same check under compute-sanitizer when the
# toolkit has it. Exit status: 0 all passed, 1 a check failed, 2 no usable GPU.
# Environment: MGL_CUBLAS_ROOT (cuBLAS location when not in the toolkit or .venv-cuda),
# MGL_CUDA_BUILD_DIR (default <repo>/build-cuda-device).
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
export PATH="/usr/local/cuda/bin:$PATH"
export MGL_CUDA_BUILD_DIR="${MGL_CUDA_BUILD_DIR:-$root/build-cuda-device}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no NVIDIA GPU visible (nvidia-smi); nothing to check" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader
# Only the architecture of this GPU: a quicker build ("9.0" -> "90").
arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d ' .')"
export CMAKE_CUDA_ARCHITECTURES="${CMAKE_CUDA_ARCHITECTURES:-$arch}"

# cuBLAS: the toolkit's, or the nvidia-cublas wheel of the machine's python3 (the device image has
# one; check_cuda_build.sh falls back to installing it into .venv-cuda, which needs a registry).
if [ -z "${MGL_CUBLAS_ROOT:-}" ] && [ ! -f /usr/local/cuda/include/cublas_v2.h ]; then
  MGL_CUBLAS_ROOT="$(python3 - <<'PY' 2>/dev/null
import glob, os, site
bases = site.getsitepackages() + [site.getusersitepackages()]
for base in bases:
    for header in sorted(glob.glob(os.path.join(base, "nvidia", "*", "include", "cublas_v2.h"))):
        print(os.path.dirname(os.path.dirname(header)))
        raise SystemExit
PY
)"
  [ -n "$MGL_CUBLAS_ROOT" ] && export MGL_CUBLAS_ROOT
fi

start=$(date +%s)
if ! "$root/native/tools/check_cuda_build.sh"; then
  echo "build or CUDA tests failed" >&2
  exit 1
fi
echo "build and tests: $(( $(date +%s) - start )) s"

status=0
"$MGL_CUDA_BUILD_DIR/Release/cuda_op_check" || status=$?
if [ "$status" -eq 0 ] && command -v compute-sanitizer >/dev/null 2>&1; then
  echo
  echo "compute-sanitizer (memcheck):"
  log="$MGL_CUDA_BUILD_DIR/sanitizer.log"
  compute-sanitizer --tool memcheck "$MGL_CUDA_BUILD_DIR/Release/cuda_op_check" >"$log" 2>&1
  if grep -q "ERROR SUMMARY: 0 errors" "$log"; then
    echo "no memory errors"
  elif grep -q "ERROR SUMMARY: [1-9]" "$log"; then
    grep -m 20 -E "Invalid|ERROR SUMMARY|at 0x|by thread" "$log"
    status=1
  else
    # Some sandboxes (gVisor) cannot host the memory checker: say so, do not fail the check.
    echo "compute-sanitizer could not check on this machine:"
    tail -n 5 "$log"
  fi
fi
exit "$status"
