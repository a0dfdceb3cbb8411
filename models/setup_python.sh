#!/bin/sh
# Creates .venv with the Python packages of models/ (PyTorch, tokenizers, matplotlib), reusing the
# system's numpy and pytest. Without a package index this warns and leaves the runtime usable;
# FOLIO_REQUIRE_PYTHON_DEPS=1 makes it an error (CI).
set -u
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv --system-site-packages .venv || { echo "models/setup_python.sh: cannot create .venv" >&2; exit 1; }
fi
if .venv/bin/python -c "import torch, tokenizers, matplotlib" 2>/dev/null; then
  exit 0
fi
echo "models/setup_python.sh: installing models/requirements.txt into .venv (PyTorch is large; this takes a few minutes)" >&2
if .venv/bin/python -m pip install --quiet --retries "${PIP_RETRIES:-1}" -r models/requirements.txt; then
  exit 0
fi
if [ "${FOLIO_REQUIRE_PYTHON_DEPS:-0}" = "1" ]; then
  echo "models/setup_python.sh: pip install failed" >&2
  exit 1
fi
echo "models/setup_python.sh: warning: pip install failed; training tools and their tests are unavailable" >&2
exit 0
