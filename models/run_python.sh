#!/bin/sh
# Runs Python from .venv when models/setup_python.sh made one, else the system's python3.
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then exec .venv/bin/python "$@"; fi
exec python3 "$@"
