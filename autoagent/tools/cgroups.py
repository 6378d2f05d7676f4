"""A pids cgroup per confined program, where the agent may make one (root, as a rule).

RLIMIT_NPROC never binds root, so for root the process limit comes from a cgroup: created
before the program starts, joined by the child before it runs anything, removed (with whatever
is left in it) when the program ends. Where no cgroup can be made, the rlimit is what there is.
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
    def create(cls, limit: int) -> PidsGroup | None:
        """A new cgroup allowing `limit` tasks; None where none can be made."""
        base = pids_base()
        if base is None:
            return None
        _sweep(base)
        path = base / f"autoagent-{os.getpid()}-{next(_counter)}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(limit))
        except OSError:
            with suppress(OSError):
                path.rmdir()
            return None
        return cls(path)

    def open_procs(self) -> int:
        """A descriptor the child writes its pid to, to join the group before it execs."""
        return os.open(self.path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)

    def remove(self, wait: float = 2.0) -> None:
        """Kill what is left in the group and remove it."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                pids = (self.path / "cgroup.procs").read_text().split()
            except OSError:
                return
            if not pids:
                break
            for pid in pids:
                with suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.01)
        with suppress(OSError):
            self.path.rmdir()


def _sweep(base: Path) -> None:
    """Remove the empty groups of agents that are gone (killed before they could)."""
    for group in base.glob("autoagent-*-*"):
        owner = group.name.split("-")[1]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            with suppress(OSError):
                group.rmdir()  # fails, and is left, while anything still runs in it


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
