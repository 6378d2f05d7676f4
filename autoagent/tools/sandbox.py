"""The OS sandbox every program the agent starts runs in.

What a confined program sees: the whole system read-only; the workspace read-write; a private,
empty /tmp and /dev/shm, within the memory limit; empty folders over the agent's data folder,
the user's home and the runtime folders (/run, the user's $XDG_RUNTIME_DIR), /dev/null over the
project's `.env` and over every other unix socket of the host in sight (unless a path is
allowed explicitly); a fresh /proc showing only its own processes; no network unless it is
allowed; a new, empty session keyring and no keyring calls; resource limits. Everything it
starts dies with it, and with the agent, even on `kill -9`.

Mechanisms, best first: bubblewrap (`bwrap`); else Landlock with user, mount, PID and network
namespaces (see confine.py). A mechanism is used only after a probe ran a program under it.
When none works, code is refused unless the human chose to run without a sandbox.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..base.errors import ConfigError, RefusedError
from .cgroups import pids_base
from .confine import ISOLATED
from .host_paths import host_sockets, python_paths, runtime_folders

if TYPE_CHECKING:
    from ..base.settings import Settings

LAUNCHER = Path(__file__).with_name("confine.py")
# The files of a fresh /proc that reach beyond the sandbox (sysctls, the magic SysRq key, IRQ
# and bus settings): root's uid may write them even without capabilities.
PROC_HOST_WIDE = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")
# Where host services listen (the Docker, D-Bus and systemd sockets): hidden as a whole.
COVER_SIZE = 64 << 10  # bytes: an empty folder over a hidden one cannot hold host memory
PROBE_SECONDS = 10.0
FIX = (
    "Install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; on Ubuntu 24.04 also "
    "allow unprivileged user namespaces for it through its AppArmor profile), or use a kernel "
    ">= 5.13 with Landlock and user namespaces enabled. Or, knowing the risk, start the run with "
    "--no-sandbox."
)


class Mechanism(StrEnum):
    BWRAP = "bwrap"
    LANDLOCK = "landlock"
    NONE = "none"  # unconfined: only with --no-sandbox


@dataclass(frozen=True)
class Limits:
    """Resource limits of each confined program (None: no limit)."""

    memory: int | None = 2 << 30  # bytes of address space
    cpu_seconds: int | None = 600
    file_size: int | None = 1 << 30  # bytes, the largest file it may write
    processes: int | None = 256

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            memory=settings.sandbox_memory or None,
            cpu_seconds=settings.sandbox_cpu_seconds or None,
            file_size=settings.sandbox_file_size or None,
            processes=settings.sandbox_processes or None,
        )

    @property
    def tmp_size(self) -> int | None:
        """The size of the private /tmp: with /dev/shm, within the memory limit."""
        return self.memory - self.memory // 4 if self.memory else None

    @property
    def shm_size(self) -> int | None:
        return self.memory // 4 if self.memory else None

    def describe(self) -> str:
        def show(value: int | None, text: str) -> str:
            return "none" if value is None else text

        return (
            f"memory {show(self.memory, size(self.memory or 0))}, "
            f"CPU time {show(self.cpu_seconds, f'{self.cpu_seconds} s')}, "
            f"file size {show(self.file_size, size(self.file_size or 0))}, "
            f"processes {show(self.processes, str(self.processes))}"
        )


def size(count: int) -> str:
    """2147483648 -> '2 GiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


@dataclass(frozen=True)
class Launch:
    """How to start one program: the argv to run, and limits to set in the child first."""

    argv: list[str]  # runs it confined, whoever starts it
    limits: Limits | None  # set by the child before exec (the launcher sets its own)
    # The same without the step that isolates it from the host's keyrings: for a parent whose
    # child calls confine.isolate_from_host() itself before exec (no Python to start).
    direct: list[str] | None = None
    # The program starts only if its `alive_fd` can be written to (see Sandbox.wrap).
    checks_agent: bool = False


@dataclass(frozen=True)
class Sandbox:
    """What a confined program may reach, and the mechanism that enforces it."""

    mechanism: Mechanism
    workspace: Path
    hidden: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()  # shown read-only even inside a hidden folder
    network: bool = False
    limits: Limits = field(default_factory=Limits)
    unconfined_by_choice: bool = False  # --no-sandbox
    problem: str = ""  # why no mechanism works, when none does

    @property
    def confined(self) -> bool:
        return self.mechanism is not Mechanism.NONE

    def check_can_run(self) -> None:
        """Raise RefusedError unless programs may run: confined, or unconfined by choice."""
        if not self.confined and not self.unconfined_by_choice:
            raise RefusedError(
                f"Refused: no sandbox works on this machine ({self.problem}), so no code runs. "
                "The human can fix it: " + FIX
            )

    def showing(self, paths: Iterable[Path]) -> Sandbox:
        """This sandbox, with `paths` (real paths) shown read-only too."""
        return replace(self, readable=tuple(dict.fromkeys([*self.readable, *paths])))

    def label(self) -> str:
        """One line for the model and the audit log: which mode ran."""
        if not self.confined:
            return "UNSANDBOXED (--no-sandbox): it could reach everything the user can"
        network = "network on" if self.network else "network off"
        return f"sandboxed ({self.mechanism.value}; {network})"

    def wrap(self, argv: Sequence[str], cwd: Path, alive_fd: int | None = None) -> Launch:
        """The argv that runs `argv` confined in `cwd`; RefusedError when it may not run.

        `alive_fd` (0 to 9; 0 is put back to /dev/null): the write end of a pipe only the agent
        reads, open in the child. Under bubblewrap the program then starts only if the agent is
        still there once the sandbox dies with it: bubblewrap's process inside arms its
        parent-death signal only after its setup, without checking that its parent is there."""
        self.check_can_run()
        if self.mechanism is Mechanism.BWRAP:
            # The process limit is set inside, where the user namespace counts only the
            # sandbox's processes (set outside, it would count every process of the user).
            limits, inner = replace(self.limits, processes=None), list(argv)
            script = []
            if alive_fd is not None:  # no reader left: SIGPIPE or EPIPE, the program never runs
                closed = "</dev/null" if alive_fd == 0 else ">&-"
                check = f"printf x >&{alive_fd} 2>/dev/null || exit 137"
                script.append(f"{check}; exec {alive_fd}{closed}")
            if self.limits.processes is not None:
                count = self.limits.processes
                script.append(f"ulimit -p {count} 2>/dev/null || ulimit -u {count}")
            if script:
                inner = ["/bin/sh", "-c", "; ".join([*script, 'exec "$@"']), "sh", *argv]
            direct = [*self._bwrap_argv(cwd), "--", *inner]
            isolated = [sys.executable, "-I", "-S", str(LAUNCHER), ISOLATED]
            return Launch([*isolated, *direct], limits, direct, alive_fd is not None)
        if self.mechanism is Mechanism.LANDLOCK:
            spec = {
                "parent": os.getpid(),
                "argv": list(argv),
                "cwd": str(cwd),
                "workspace": str(self.workspace),
                "hidden": [str(p) for p in self.hidden],
                "readable": [str(p) for p in self.readable],
                "network": self.network,
                "sockets": [str(p) for p in self.exposed_sockets()],
                "tmp_size": self.limits.tmp_size,
                "shm_size": self.limits.shm_size,
                "limits": {
                    "memory": self.limits.memory,
                    "cpu_seconds": self.limits.cpu_seconds,
                    "file_size": self.limits.file_size,
                    "processes": self.limits.processes,
                },
            }
            launcher = [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(spec)]
            return Launch(launcher, None)
        # Unconfined: a process limit would count every process of the user; left off.
        return Launch(list(argv), replace(self.limits, processes=None))

    def _bwrap_argv(self, cwd: Path) -> list[str]:
        # As root, bwrap keeps every capability inside unless told: the program could unmount
        # what hides a path, remount a read-only bind read-write and write sysctls. So: no
        # capabilities, no nested user namespace, and /proc's host-wide files read-only.
        args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-all", "--unshare-user"]
        args += ["--disable-userns", "--cap-drop", "ALL"]
        if self.network:
            args.append("--share-net")
        # /dev read-only: as root, its tmpfs would take files of any size; /dev/shm is sized.
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--remount-ro", "/dev", "--proc", "/proc"]
        args += _sized_tmpfs(self.limits.shm_size, Path("/dev/shm"))
        for proc_file in PROC_HOST_WIDE:
            args += ["--ro-bind-try", proc_file, proc_file]
        args += _sized_tmpfs(self.limits.tmp_size, Path("/tmp"))
        inside: list[Path] = []
        for path in self._covers():
            if path.is_relative_to(self.workspace):
                inside.append(path)
            elif path.is_dir():
                args += _sized_tmpfs(COVER_SIZE, path)
            else:
                args += ["--ro-bind", "/dev/null", str(path)]
        covered = self._covered_folders()
        shown = [
            p for p in self.readable if p.exists() and any(p.is_relative_to(c) for c in covered)
        ]
        for path in shown:
            args += ["--ro-bind", str(path), str(path)]
        for path in self._hidden_within(shown):
            if path.is_dir():
                args += _sized_tmpfs(COVER_SIZE, path)
            else:
                args += ["--ro-bind", "/dev/null", str(path)]
        for path in self.exposed_sockets():
            args += ["--ro-bind", "/dev/null", str(path)]
        args += ["--bind", str(self.workspace), str(self.workspace)]
        for path in inside:
            if path.is_file():
                args += ["--ro-bind", "/dev/null", str(path)]
            elif path.is_dir():
                args += _sized_tmpfs(COVER_SIZE, path)
        return [*args, "--chdir", str(cwd)]

    def _covers(self) -> list[Path]:
        """The hidden paths that get a cover of their own: inside the workspace, or existing
        and not inside /tmp or another hidden folder."""
        covers: list[Path] = []
        for path in sorted(self.hidden, key=lambda p: len(p.parts)):
            inside = path.is_relative_to(self.workspace)
            if inside or (
                path.exists()
                and not any(path.is_relative_to(c) for c in [Path("/tmp"), *covers] if c.is_dir())
            ):
                covers.append(path)
        return covers

    def _hidden_within(self, shown: list[Path]) -> list[Path]:
        """The hidden paths outside the workspace inside a folder shown again (the project's
        .env in a folder an MCP server runs in): hidden once more, after it is shown."""
        return [
            path
            for path in sorted(self.hidden, key=lambda p: len(p.parts))
            if path.exists()
            and not path.is_relative_to(self.workspace)
            and any(path != s and path.is_relative_to(s) for s in shown)
        ]

    def _covered_folders(self) -> list[Path]:
        """The folders outside the workspace shown empty (or only with readable paths)."""
        return [Path("/tmp")] + [
            p for p in self._covers() if p.is_dir() and not p.is_relative_to(self.workspace)
        ]

    def exposed_sockets(self) -> list[Path]:
        """The host's listening unix sockets a program would still see: not in the workspace,
        not under a hidden folder, not named readable. Each gets /dev/null laid over it."""
        covered = [self.workspace, *self.readable, *self._covered_folders()]
        return [s for s in host_sockets() if not any(s.is_relative_to(c) for c in covered)]

    def describe(self) -> list[str]:
        """What `autoagent sandbox` and the start of a run show."""
        if not self.confined:
            lines = [
                "Sandbox: NONE. "
                + (
                    "--no-sandbox: programs run with everything the user can reach."
                    if self.unconfined_by_choice
                    else f"No mechanism works here ({self.problem}); code-running commands "
                    f"are refused. {FIX}"
                )
            ]
        else:
            tmp, shm = self.limits.tmp_size, self.limits.shm_size
            within = f" ({size(tmp)} and {size(shm)})" if tmp and shm else ""
            lines = [
                f"Sandbox: {self.mechanism.value}",
                f"Writable: {self.workspace}, a private /tmp and /dev/shm{within}, emptied "
                "after each command",
                "Hidden: " + (", ".join(str(p) for p in self.hidden) or "nothing"),
                "Network: "
                + ("on (--allow-network)" if self.network else "off")
                + "; the host's unix sockets in sight are covered, its keyrings out of reach",
            ]
            if self.readable:
                lines.append("Also readable: " + ", ".join(str(p) for p in self.readable))
        lines.append(f"Limits: {self.limits.describe()}")
        if self.confined and self.limits.processes and os.geteuid() == 0 and pids_base() is None:
            lines.append(
                "The process limit is not enforced: the agent runs as root and can make no pids "
                "cgroup (RLIMIT_NPROC never binds root)."
            )
        return lines

    def explain(self, exit_code: int, output: str) -> str | None:
        """Which limit a program hit, judged from how it ended; None when none."""
        limits = self.limits
        if exit_code == -signal.SIGXCPU and limits.cpu_seconds:
            return f"killed: CPU time limit {limits.cpu_seconds} s"
        tail = output[-3000:]
        if limits.file_size and (exit_code == -signal.SIGXFSZ or "File too large" in tail):
            return f"stopped: file size limit {size(limits.file_size)}"
        if limits.memory and (
            "MemoryError" in tail
            or "Cannot allocate memory" in tail
            or "out of memory" in tail.lower()
            or "bad_alloc" in tail
        ):
            return f"killed: memory limit {size(limits.memory)}"
        if limits.processes and (
            "Resource temporarily unavailable" in tail or "fork: retry" in tail
        ):
            return f"stopped: process limit {limits.processes}"
        return None


def _sized_tmpfs(size: int | None, path: Path) -> list[str]:
    return [*(["--size", str(size)] if size else []), "--tmpfs", str(path)]


def build_sandbox(settings: Settings, workspace: Path, dotenv: Path = Path(".env")) -> Sandbox:
    """The sandbox the settings ask for, probed. ConfigError when a named mechanism fails."""
    from ..base.settings import user_homes

    home = Path(os.path.realpath(settings.home.expanduser()))
    hidden = [home, *user_homes()]
    # The folder the agent was started in (the project: .env, ai_settings.yaml, whatever lies
    # beside the workspace), unless it is the workspace or the root.
    here = Path(os.path.realpath("."))
    if here != Path("/") and not here.is_relative_to(os.path.realpath(workspace)):
        hidden.append(here)
    if dotenv.is_file():
        hidden.append(Path(os.path.realpath(dotenv)))
    hidden += runtime_folders()
    readable = [Path(os.path.realpath(p.expanduser())) for p in settings.sandbox_readable]
    readable += python_paths(hidden)
    if settings.allow_network:
        # Name resolution reads /etc/resolv.conf, which may lead into /run (systemd-resolved,
        # resolvconf): that one file stays, none of the sockets beside it.
        resolv = Path(os.path.realpath("/etc/resolv.conf"))
        if resolv.is_file() and any(resolv.is_relative_to(h) for h in hidden):
            readable.append(resolv)
    readable = [p for p in readable if not any(p != q and p.is_relative_to(q) for q in readable)]
    sandbox = Sandbox(
        mechanism=Mechanism.NONE,
        workspace=Path(os.path.realpath(workspace)),
        hidden=tuple(dict.fromkeys(hidden)),
        readable=tuple(dict.fromkeys(readable)),
        network=settings.allow_network,
        limits=Limits.from_settings(settings),
    )
    choice = settings.sandbox
    if choice == "none":
        return replace(sandbox, unconfined_by_choice=True)
    wanted = [Mechanism(choice)] if choice != "auto" else [Mechanism.BWRAP, Mechanism.LANDLOCK]
    problems = []
    for mechanism in wanted:
        problem = probe(mechanism)
        if problem is None:
            return replace(sandbox, mechanism=mechanism)
        problems.append(f"{mechanism.value}: {problem}")
    if choice != "auto":
        raise ConfigError(
            f"AUTOAGENT_SANDBOX={choice}, but it does not work here ({problems[0]}). Use "
            "AUTOAGENT_SANDBOX=auto to take the best mechanism that works. " + FIX
        )
    return replace(sandbox, problem="; ".join(problems))


@cache
def probe(mechanism: Mechanism) -> str | None:
    """None when `mechanism` confines a program on this machine, else what went wrong."""
    if mechanism is Mechanism.BWRAP and shutil.which("bwrap") is None:
        return "bwrap is not installed"
    if mechanism is Mechanism.LANDLOCK:
        from .confine import landlock_abi

        if landlock_abi() < 1:
            return "the kernel has no Landlock (5.13 or later, enabled in the LSM list)"
    with tempfile.TemporaryDirectory(prefix="autoagent-probe-") as folder:
        trial = Sandbox(mechanism=mechanism, workspace=Path(os.path.realpath(folder)))
        launch = trial.wrap(["/bin/sh", "-c", "echo ok > probe"], trial.workspace)
        try:
            done = subprocess.run(
                launch.argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PROBE_SECONDS,
                env={"PATH": os.defpath},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"the probe could not run ({exc})"
        written = (trial.workspace / "probe").is_file()
        if done.returncode != 0 or not written:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            return said[-1] if said else f"the probe failed (exit code {done.returncode})"
    return None
