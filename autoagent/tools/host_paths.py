"""The host's paths a sandbox must know of: the unix sockets bound in sight, the runtime
folders, and the folders of the agent's own Python that a sandbox would otherwise hide."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

RUNTIME_FOLDERS = (Path("/run"), Path("/var/run"))
UNIX_SOCKETS = Path("/proc/net/unix")  # every unix socket bound in this network namespace


def host_sockets() -> list[Path]:
    """The unix socket files bound in this network namespace, by their real paths."""
    try:
        lines = UNIX_SOCKETS.read_text(errors="replace").splitlines()[1:]
    except OSError:
        return []
    named = {fields[7] for fields in (line.split(None, 7) for line in lines) if len(fields) == 8}
    found = set()
    for name in named:
        if not name.startswith("/"):
            continue  # abstract (@name), or bound by a relative path
        path = os.path.realpath(name)
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                found.add(Path(path))
        except OSError:
            continue  # removed since
    return sorted(found)


def runtime_folders() -> list[Path]:
    """/run, /var/run and the user's runtime folder, as real paths, where they exist."""
    from ..base.settings import user_runtime_folder

    folders = [*RUNTIME_FOLDERS, user_runtime_folder()]
    real = [Path(os.path.realpath(f)) for f in folders if f is not None and f.is_dir()]
    return list(dict.fromkeys(real))


def python_paths(hidden: Iterable[Path] = ()) -> list[Path]:
    """The folders of the Python that runs the agent (and its snippets) that a sandbox would
    not show: inside a hidden folder, or under /tmp, which the sandbox replaces with a private
    one (a project cloned under /tmp)."""
    out_of_sight = [*hidden, Path("/tmp")]
    prefixes = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths = [Path(os.path.realpath(prefix)) for prefix in sorted(prefixes)]
    return [p for p in paths if any(p.is_relative_to(h) for h in out_of_sight)]
