"""The sandbox's resource limits for a program that another library starts (an MCP server,
started by the SDK: nothing of ours runs between its fork and exec), and its death with the
agent.

Run as a script with the standard library only, in front of the confined command line:

    python -I -S limits_launcher.py SPEC PROGRAM [ARGS...]

SPEC is JSON: `parent` (the agent's pid), `procs` (a pids cgroup's cgroup.procs to join, or
null), `limits` (memory, file_size, processes, cpu_seconds; null for none) and `watch`. It dies
with the agent, joins the cgroup, takes the limits, then becomes PROGRAM (bubblewrap or the
Landlock launcher), so that everything the program starts inherits them: what process.py's child
setup does for the commands' programs. Exit status 125 when it cannot (the reason goes to stderr).

With `watch` (a program no sandbox holds: bubblewrap and the Landlock launcher end what they
started when the agent dies), it starts PROGRAM as its child instead and stays in front of it:
when the agent dies, it kills its whole process group, so a server that ignores the end of its
stdin dies too, also one that a program such as npx or uvx started in turn.
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
AGENT_GONE = signal.SIGUSR1  # the watcher's parent-death signal: one it can catch
_RLIMITS = {
    "memory": resource.RLIMIT_AS,
    "file_size": resource.RLIMIT_FSIZE,
    "processes": resource.RLIMIT_NPROC,
}


def main(spec: dict[str, Any], argv: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
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
    if spec.get("watch"):
        return watch(libc, spec["parent"], argv)
    os.execvp(argv[0], argv)


def watch(libc: Any, parent: int, argv: list[str]) -> int:
    """Run `argv` as a child until it exits (its exit status is ours); if the agent dies
    first, kill the process group: the program and whatever it started."""
    signal.signal(AGENT_GONE, lambda *_: os.killpg(0, signal.SIGKILL))
    libc.prctl(PR_SET_PDEATHSIG, AGENT_GONE, 0, 0, 0)
    if os.getppid() != parent:
        return FAILED  # gone before the signal was armed
    watcher = os.getpid()
    program = os.fork()
    if program == 0:
        try:
            signal.signal(AGENT_GONE, signal.SIG_DFL)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the watcher
            if os.getppid() == watcher:
                os.execvp(argv[0], argv)
        except OSError as exc:
            sys.stderr.write(f"Could not start the program: {exc}\n")
        os._exit(FAILED)
    # The pipes are the program's alone: they close when it exits. The client's stop signals
    # the whole group: the program gets its time to exit, the watcher waits for it.
    quiet = os.open(os.devnull, os.O_RDWR)
    os.dup2(quiet, 0)
    os.dup2(quiet, 1)
    os.close(quiet)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _, status = os.waitpid(program, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    try:
        sys.exit(main(json.loads(sys.argv[1]), sys.argv[2:]))
    except (OSError, ValueError, KeyError, IndexError) as exc:
        sys.stderr.write(f"Could not start the program with the sandbox's limits: {exc}\n")
        sys.exit(FAILED)
