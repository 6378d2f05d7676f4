#!/usr/bin/env bash
# Run the linters and the test suite. The first run makes .venv and installs the dev extras.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f .venv/.dev-installed ] || [ pyproject.toml -nt .venv/.dev-installed ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install --upgrade pip >/dev/null
    .venv/bin/python -m pip install -e ".[dev]"
    touch .venv/.dev-installed
fi
.venv/bin/ruff check autoagent tests bench
.venv/bin/python -m pytest "$@"
