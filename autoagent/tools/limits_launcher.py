"""The sandbox's resource limits for a program that another library starts (an MCP server,
started by the SDK: nothing of ours runs between its fork and exec).

Run as a script with the standard library only, in front of the confined command line:

    python -I -S limits_launcher.py SPEC PROGRAM [ARGS...]

SPEC is JSON: `parent` (the agent's pid), `procs` (a pids cgroup's cgroup.procs to join, or
null) and `limits` (memory, file_size, processes, cpu_seconds; null for none). It dies with the
agent, joins the cgroup, takes the limits, then becomes PROGRAM (bubblewrap or the Landlock
launcher), so that everything the program starts inherits them: what process.py's child setup
does for the commands' programs. Exit status 125 when it cannot (the reason goes to stderr).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from typing import Any

FAILED = 125
PR_SET_PDEATHSIG = 1
_RLIMITS = {
    "memory": resource.RLIMIT_AS,
    "file_size": resource.RLIMIT_FSIZE,
    "processes": resource.RLIMIT_NPROC,
}


def main(spec: dict[str, Any], argv: list[str]) -> int:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != spec["parent"]:
        return FAILED  # the agent is already gone
    if spec.get("procs"):
        # Joined before anything runs, so that every process of the program counts: as root,
        # this is the process limit (RLIMIT_NPROC never binds root).
        with open(spec["procs"], "w", encoding="ascii") as procs:
            procs.write(str(os.getpid()))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    limits = spec.get("limits") or {}
    for name, which in _RLIMITS.items():
        if (value := limits.get(name)) is not None:
            resource.setrlimit(which, (value, value))
    if (cpu := limits.get("cpu_seconds")) is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    try:
        sys.exit(main(json.loads(sys.argv[1]), sys.argv[2:]))
    except (OSError, ValueError, KeyError, IndexError) as exc:
        sys.stderr.write(f"Could not start the program with the sandbox's limits: {exc}\n")
        sys.exit(FAILED)
