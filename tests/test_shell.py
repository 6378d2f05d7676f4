"""The shell policy: never a shell, and programs judged by what they really are."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from autoagent.base.errors import CommandError, RefusedError
from autoagent.base.settings import Settings, load_settings
from autoagent.tools.shell import ShellPolicy, shell_argv

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        not (shutil.which("whoami") and shutil.which("ls") and shutil.which("echo")),
        reason="needs whoami, ls and echo on PATH",
    ),
]

ALLOW = ShellPolicy(enabled=True, mode="allow", programs=("ls", "echo"))
DENY = ShellPolicy(enabled=True, mode="deny", programs=("whoami", "rm"))
WHOAMI = os.path.realpath(shutil.which("whoami") or "")
BIN = os.path.dirname(WHOAMI)
WHOAMI_SPELLINGS = [
    "whoami",
    WHOAMI,
    os.path.join(BIN, ".", "whoami"),
    os.path.join(BIN, "..", os.path.basename(BIN), "whoami"),
    "/bin/./whoami",
    "/usr/bin/../bin/whoami",
    "//usr//bin//whoami",
]


def test_the_shell_is_off_by_default(tmp_path: Path) -> None:
    assert Settings().shell_enabled is False
    with pytest.raises(RefusedError, match=r"turned off.*AUTOAGENT_SHELL_ENABLED"):
        shell_argv("ls", ShellPolicy.from_settings(Settings()), tmp_path)


@pytest.mark.parametrize("policy", [ALLOW, DENY], ids=["allowlist", "denylist"])
@pytest.mark.parametrize("spelling", WHOAMI_SPELLINGS)
def test_other_spellings_of_a_program_are_judged_by_its_real_path(
    tmp_path: Path, policy: ShellPolicy, spelling: str
) -> None:
    if not os.path.exists(spelling.split()[0]) and "/" in spelling:
        pytest.skip(f"{spelling} does not exist here")
    with pytest.raises(RefusedError, match="Refused"):
        shell_argv(f"{spelling} --version", policy, tmp_path)


@pytest.mark.parametrize("policy", [ALLOW, DENY], ids=["allowlist", "denylist"])
def test_a_link_named_like_an_allowed_program_is_judged_by_its_target(
    tmp_path: Path, policy: ShellPolicy
) -> None:
    (tmp_path / "ls").symlink_to(WHOAMI)
    with pytest.raises(RefusedError, match="really"):
        shell_argv("./ls", policy, tmp_path)


def test_a_program_reached_through_a_relative_path_is_resolved(tmp_path: Path) -> None:
    climb = "../" * len(tmp_path.parts) + WHOAMI.lstrip("/")
    with pytest.raises(RefusedError):
        shell_argv(climb, DENY, tmp_path)


def test_allowed_programs_run_with_an_absolute_path(tmp_path: Path) -> None:
    argv = shell_argv("ls -la 'a b'", ALLOW, tmp_path)
    assert os.path.isabs(argv[0])
    assert os.path.basename(argv[0]) == "ls"
    assert argv[1:] == ["-la", "a b"]
    # Under a denylist, anything not denied runs.
    assert shell_argv("echo hi", DENY, tmp_path)[1:] == ["hi"]


def test_the_default_is_a_real_shell(tmp_path: Path) -> None:
    line = "ls | sort | head -3 > out.txt"
    assert shell_argv(line, ShellPolicy(enabled=True), tmp_path) == ["/bin/sh", "-c", line]
    with pytest.raises(CommandError, match="empty"):
        shell_argv("  ", ShellPolicy(enabled=True), tmp_path)


def test_default_lists(tmp_path: Path) -> None:
    assert shell_argv("ls", ShellPolicy(enabled=True, mode="allow"), tmp_path)
    with pytest.raises(RefusedError, match="not an allowed program"):
        shell_argv("whoami", ShellPolicy(enabled=True, mode="allow"), tmp_path)
    if shutil.which("rm"):
        with pytest.raises(RefusedError, match="denied"):
            shell_argv("rm -rf x", ShellPolicy(enabled=True, mode="deny"), tmp_path)


def test_relative_path_entries_are_not_searched(tmp_path: Path) -> None:
    (tmp_path / "sneaky").write_text("#!/bin/sh\necho pwned\n")
    (tmp_path / "sneaky").chmod(0o755)
    policy = ShellPolicy(enabled=True, mode="deny", programs=())
    with pytest.raises(CommandError, match="not found"):
        shell_argv("sneaky", policy, tmp_path, search_path=f".:{tmp_path.name}")


def test_bad_command_lines_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="quotes"):
        shell_argv("echo 'unclosed", ALLOW, tmp_path)
    with pytest.raises(CommandError, match="empty"):
        shell_argv("   ", ALLOW, tmp_path)
    with pytest.raises(CommandError, match="not found"):
        shell_argv("no-such-program-xyz", DENY, tmp_path)


def test_shell_settings_come_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "AUTOAGENT_SHELL_ENABLED": "true",
        "AUTOAGENT_SHELL_MODE": "deny",
        "AUTOAGENT_SHELL_PROGRAMS": "rm, curl,wget",
    }
    settings = load_settings(environ=environ, dotenv_file=None)
    policy = ShellPolicy.from_settings(settings)
    assert policy == ShellPolicy(enabled=True, mode="deny", programs=("rm", "curl", "wget"))
