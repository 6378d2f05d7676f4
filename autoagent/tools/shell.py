"""The shell policy: how execute_shell runs a command line.

In mode "sh" (the default) the line is run by `sh -c`, in the sandbox like all code: pipes,
globs and redirections work, and the sandbox, not this module, bounds what it can do.

In modes "allow" and "deny" no shell is started: the line is split the way a shell would
(shlex), but `;`, `|`, `&&`, `$()`, backticks and redirections stay literal arguments of the
one program. The program is located (a path is taken relative to the workspace, a bare name is
looked up on PATH) and judged by its real path, so `/bin/./whoami`, `/usr/bin/../bin/whoami` or
a link named `ls` that points at `rm` are seen for what they are. This is an extra policy for
those who want one, on top of the sandbox; alone, it would not stop an allowed program from
reading or writing wherever the user can.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..base.errors import CommandError, RefusedError
from .process import child_environment

if TYPE_CHECKING:
    from ..base.settings import Settings

# Read-only tools by default; programs that can write files or run others are left out.
DEFAULT_ALLOWED = (
    "ls", "cat", "head", "tail", "wc", "grep", "echo", "pwd", "date", "diff", "cut", "file",
    "stat", "du",
)  # fmt: skip
# A denylist is weak (copy a program, or run it from Python); these are only the obvious ones.
DEFAULT_DENIED = (
    "sh", "bash", "dash", "zsh", "fish", "ksh", "csh", "env", "sudo", "su", "doas", "rm", "dd",
    "mkfs", "shred", "shutdown", "reboot", "halt", "poweroff", "kill", "pkill", "killall",
    "curl", "wget", "nc", "ncat", "socat", "ssh", "scp", "rsync", "chmod", "chown", "xargs",
    "nohup", "setsid", "crontab",
)  # fmt: skip


@dataclass(frozen=True)
class ShellPolicy:
    enabled: bool = False
    mode: Literal["sh", "allow", "deny"] = "sh"
    programs: tuple[str, ...] | None = None  # None: DEFAULT_ALLOWED or DEFAULT_DENIED

    @classmethod
    def from_settings(cls, settings: Settings) -> ShellPolicy:
        return cls(settings.shell_enabled, settings.shell_mode, settings.shell_programs)

    @property
    def names(self) -> tuple[str, ...]:
        if self.programs is not None:
            return self.programs
        return DEFAULT_ALLOWED if self.mode != "deny" else DEFAULT_DENIED


def shell_argv(
    command_line: str, policy: ShellPolicy, workspace_root: Path, search_path: str | None = None
) -> list[str]:
    """The argv to run for `command_line`, its program made absolute.

    Raises RefusedError when the shell is off or the policy rejects the program, and
    CommandError when the line cannot be parsed or the program is not found.
    `search_path` defaults to the PATH the child process would get.
    """
    if not policy.enabled:
        raise RefusedError(
            "Refused: execute_shell is turned off. The human can turn it on with "
            "AUTOAGENT_SHELL_ENABLED=true; meanwhile use execute_python_code."
        )
    if policy.mode == "sh":
        if not command_line.strip():
            raise CommandError("The command line is empty.")
        return ["/bin/sh", "-c", command_line]
    try:
        argv = shlex.split(command_line)
    except ValueError as exc:
        raise CommandError(f"Could not parse the command line: {exc}. Check the quotes.") from exc
    if not argv:
        raise CommandError("The command line is empty.")
    path = _absolute_entries(
        child_environment().get("PATH", os.defpath) if search_path is None else search_path
    )
    program = argv[0]
    located = _locate(program, workspace_root, path)
    real = os.path.realpath(located)
    names = policy.names
    listed = _real_paths(names, path)
    given = {os.path.basename(real), os.path.basename(located)}
    if policy.mode == "allow":
        # The real file must be a listed program, and the name it is called by must be a
        # listed name (a multi-call binary such as busybox acts on the name it is called by).
        allowed = real in listed and os.path.basename(located) in _basenames(names)
        if not allowed:
            raise RefusedError(
                f"Refused: {program!r} (really {real}) is not an allowed program. "
                f"Allowed: {', '.join(names) or 'none'}."
            )
    elif real in listed or given & _basenames(names):
        raise RefusedError(f"Refused: {program!r} (really {real}) is a denied program.")
    return [located, *argv[1:]]


def _absolute_entries(search_path: str) -> str:
    # A relative PATH entry such as "." would be resolved against our folder, not the child's.
    return os.pathsep.join(e for e in search_path.split(os.pathsep) if os.path.isabs(e))


def _locate(program: str, workspace_root: Path, search_path: str) -> str:
    if "/" in program:
        located = os.path.join(workspace_root, program)  # an absolute program stays as it is
    else:
        found = shutil.which(program, path=search_path)
        if found is None:
            raise CommandError(f"Program not found on PATH: {program!r}.")
        located = found
    if not os.path.isfile(located) or not os.access(located, os.X_OK):
        raise CommandError(f"{program!r} is not an executable file.")
    return located


def _real_paths(names: Iterable[str], search_path: str) -> set[str]:
    """The real files the listed names stand for (a name may be a path)."""
    reals = set()
    for name in names:
        found = name if "/" in name else shutil.which(name, path=search_path)
        if found:
            reals.add(os.path.realpath(found))
    return reals


def _basenames(names: Iterable[str]) -> set[str]:
    return {os.path.basename(name) for name in names}
