#!/usr/bin/env bash
# Start autoagent. The first start sets up .venv from the lock files, compiling llama.cpp
# for the bundled offline model (a few minutes on 2 cores, once); later starts go straight in.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install.sh run
exec .venv/bin/autoagent run "$@"
