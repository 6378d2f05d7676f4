#!/usr/bin/env bash
# Start autoagent. The first run makes a virtual environment in .venv and installs into it.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/autoagent ]; then
    echo "First run: installing autoagent and its dependencies into .venv (a few minutes)..."
    python3 -m venv .venv
    .venv/bin/python -m pip install --upgrade pip >/dev/null
    .venv/bin/python -m pip install -e .
fi
exec .venv/bin/autoagent run "$@"
