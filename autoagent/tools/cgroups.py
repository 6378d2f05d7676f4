"""A pids cgroup per program the agent starts, where the agent may make one (root, as a rule).

RLIMIT_NPROC never binds root, so for root the process limit comes from a cgroup: created
before the program starts, joined by the child before it runs anything, removed (with whatever
is left in it) when the program ends. Where no cgroup can be made, the rlimit is what there is.

A group is named after the agent process (its pid and start time), so that what an agent killed
with `kill -9` left running can be found and ended exactly: end_leftovers(), which a resumed run
calls before it settles the step the dead process left in flight.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from contextlib import suppress
from functools import cache
from pathlib import Path

_counter = itertools.count(1)


class PidsGroup:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, limit: int | None) -> PidsGroup | None:
        """A new cgroup allowing `limit` tasks (None: any number); None where none can be
        made."""
        base = pids_base()
        if base is None:
            return None
        _sweep(base)
        path = base / f"{_PREFIX}{_owner(os.getpid())}-{next(_counter)}"
        try:
            path.mkdir()
            (path / "pids.max").write_text("max" if limit is None else str(limit))
        except OSError:
            with suppress(OSError):
                path.rmdir()
            return None
        return cls(path)

    def open_procs(self) -> int:
        """A descriptor the child writes its pid to, to join the group before it execs."""
        return os.open(self.path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)

    def remove(self, wait: float = 2.0) -> int:
        """Kill what is left in the group and remove it; how many processes were killed."""
        killed: set[str] = set()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                pids = (self.path / "cgroup.procs").read_text().split()
            except OSError:
                return len(killed)
            if not pids:
                break
            for pid in pids:
                with suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
                    killed.add(pid)
            time.sleep(0.01)
        with suppress(OSError):
            self.path.rmdir()
        return len(killed)


def end_leftovers(wait: float = 5.0) -> int:
    """Kill what agents that are gone left running in their groups, wait until it is gone and
    remove the groups; how many processes were killed (0 where no group can be made)."""
    base = pids_base()
    return 0 if base is None else _sweep(base, wait)


def _sweep(base: Path, wait: float = 5.0) -> int:
    """End the groups of agents that are gone (killed before they could): see end_leftovers."""
    killed = 0
    for group in base.glob(f"{_PREFIX}*"):
        owner = group.name[len(_PREFIX) :].rsplit("-", 1)[0]
        pid, _, started = owner.partition("-")
        if not pid.isdigit():
            continue
        if (_owner(int(pid)) != owner) if started else not Path(f"/proc/{pid}").exists():
            killed += PidsGroup(group).remove(wait)
    return killed


_PREFIX = "autoagent-"


def _owner(pid: int) -> str:
    """`pid-starttime` of a live process (a pid of its own once reused); '' once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return f"{pid}-{stat.rsplit(')', 1)[1].split()[19]}"


@cache
def pids_base() -> Path | None:
    """The pids cgroup folder this process is in, if it is root and may make groups there."""
    if os.geteuid() != 0:
        return None
    try:
        memberships = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in memberships:
        _, controllers, path = line.split(":", 2)
        version = "cgroup2" if controllers == "" else "cgroup"
        if version == "cgroup" and "pids" not in controllers.split(","):
            continue
        for mount in mounts:
            fields = mount.split()
            dash = fields.index("-")
            fstype, options = fields[dash + 1], fields[dash + 3].split(",")
            if fstype != version or (version == "cgroup" and "pids" not in options):
                continue
            base = Path(fields[4]) / path.lstrip("/")
            if version == "cgroup2":
                try:
                    enabled = (base / "cgroup.subtree_control").read_text().split()
                except OSError:
                    continue
                if "pids" not in enabled:
                    continue
            if os.access(base, os.W_OK):
                return base
    return None
