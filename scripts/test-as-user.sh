#!/usr/bin/env bash
# Run tests as an unprivileged user (default: the sandbox's, `-m sandbox`), for a machine where
# the suite runs as root: the sandbox must hold for both. Needs root and an installed .venv;
# arguments go to pytest. The user is made if missing; the folders on the way to the checkout
# and to the Python under .venv get the search bit for others while the tests run, no more.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "$0: run as root (it switches to an unprivileged user)." >&2; exit 2; }
user=${AUTOAGENT_TEST_USER:-autoagent-test}
id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"

opened=()
restore() { for dir in "${opened[@]}"; do chmod o-x "$dir"; done; }
trap restore EXIT
for target in "$PWD" "$(readlink -f .venv/bin/python)"; do
    dir=$(dirname "$target")
    while [ "$dir" != / ]; do
        if ! runuser -u "$user" -- test -x "$dir"; then
            chmod o+x "$dir" && opened+=("$dir")
        fi
        dir=$(dirname "$dir")
    done
done

[ $# -gt 0 ] || set -- -m sandbox
echo "Tests as the unprivileged user $user: $*"
runuser -u "$user" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$(getent passwd "$user" | cut -d: -f6)" \
    LANG=C.UTF-8 CI="${CI:-}" .venv/bin/python -m pytest -p no:cacheprovider "$@"
