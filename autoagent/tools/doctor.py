"""A quick probe of the sandbox, for `autoagent sandbox`: a shell inside checks each promise."""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .confine import SYS_KEYCTL
from .host_paths import runtime_folders
from .process import child_environment, run_process
from .sandbox import Sandbox

_MARK = "PROBE"
_KEYCTL_GET_KEYRING_ID, _KEYCTL_LINK = 0, 8
_SESSION_KEYRING, _USER_KEYRING = -3, -4
# Inside: the session keyring is not the agent's (or keyring calls fail), and the agent's
# user keyring cannot be linked in (that would reach its keys again).
_KEYRING_CHECK = """
import ctypes, sys
call = ctypes.CDLL(None, use_errno=True).syscall
call.restype = ctypes.c_long
nr, session, user = (int(a) for a in sys.argv[1:])
inside = call(nr, 0, -3, 0)
relinked = user > 0 and call(nr, 8, user, -3) == 0
sys.exit(1 if (inside >= 0 and inside == session) or relinked else 0)
"""


def _keyring_ids() -> tuple[int, int]:
    """This process's session and user keyring ids (0 where there is none or no keyctl)."""
    if SYS_KEYCTL < 0:
        return 0, 0
    call = ctypes.CDLL(None, use_errno=True).syscall
    call.restype = ctypes.c_long
    ids = [
        call(SYS_KEYCTL, _KEYCTL_GET_KEYRING_ID, k, 0) for k in (_SESSION_KEYRING, _USER_KEYRING)
    ]
    return max(int(ids[0]), 0), max(int(ids[1]), 0)


@contextmanager
def _listening_sockets() -> Iterator[list[Path]]:
    """Unix sockets listening where host services would: in the first runtime folder this user
    may write (/run as root, $XDG_RUNTIME_DIR otherwise) and in /var/tmp."""
    folders = [f for f in runtime_folders() if os.access(f, os.W_OK)][:1]
    folders += [Path("/var/tmp")] if os.access("/var/tmp", os.W_OK) else []
    with ExitStack() as stack:
        paths = []
        for folder in folders:
            made = Path(tempfile.mkdtemp(prefix="autoagent-probe-", dir=folder))
            stack.callback(shutil.rmtree, made, True)
            listener = stack.enter_context(socket.socket(socket.AF_UNIX))
            listener.bind(str(made / "sock"))
            listener.listen()
            paths.append(made / "sock")
        yield paths


def probe_report(sandbox: Sandbox) -> list[tuple[str, bool]]:
    """(check, passed) for each promise of `sandbox`, checked from inside it."""
    with _listening_sockets() as sockets:
        return _probe(sandbox, sockets)


def _probe(sandbox: Sandbox, sockets: list[Path]) -> list[tuple[str, bool]]:
    workspace = sandbox.workspace
    outside = workspace.parent / ".autoagent-probe-outside"
    checks: list[tuple[str, str]] = [
        (
            "the workspace is writable",
            'f=.autoagent-probe-$$; echo x > "$f" && rm -f "$f"',
        ),
        ("/usr is not writable", "! (echo x > /usr/.autoagent-probe) 2>/dev/null"),
        ("/tmp is writable", "echo x > /tmp/.autoagent-probe && rm /tmp/.autoagent-probe"),
        (
            "only the sandbox's own processes are in /proc",
            "[ $(ls /proc | grep -c '^[0-9]') -lt 10 ]",
        ),
    ]
    # The private /tmp hides the host's; a hidden folder elsewhere has a cover of its own.
    covers = [Path("/tmp")]
    covers += [
        p for p in sandbox.hidden
        if p.is_dir() and not p.is_relative_to(workspace) and not p.is_relative_to("/tmp")
    ][:1]  # fmt: skip
    for path in sandbox.hidden:
        quoted = shlex.quote(str(path))
        if path.is_dir():
            shown = [workspace, *sandbox.readable]
            kept = {
                p.relative_to(path).parts[0] for p in shown if p.is_relative_to(path) and p != path
            }
            others = "".join(f" -e {shlex.quote(name)}" for name in sorted(kept))
            test = f'[ -z "$(ls -A {quoted} | grep -v -x -e .{others})" ]'
            note = f" but for {', '.join(sorted(kept))}" if kept else ""
            checks.append((f"{path} is hidden (empty{note})", test))
        elif path.is_file():
            checks.append((f"{path} is hidden (empty)", f"[ ! -s {quoted} ]"))
    # What root inside could do with capabilities or a writable /proc (bwrap run as root keeps
    # them unless told); each is checked by trying it, harmlessly where it is refused. After
    # the checks above: mount and umount, even refused, may leave /run/mount in a cover.
    checks += [
        ("no capabilities inside", "grep -q '^CapEff:[[:space:]]*0*$' /proc/self/status"),
        (
            "/proc/sys is read-only",
            'v=$(cat /proc/sys/vm/swappiness) && ! echo "$v" > /proc/sys/vm/swappiness',
        ),
        (
            "read-only folders cannot be remounted writable",
            "! mount -o remount,rw / 2>/dev/null && ! mount -o remount,bind,rw / 2>/dev/null",
        ),
        ("no new user namespace can be made", "! unshare -U true"),
    ]
    for cover in covers:
        checks.append((f"what hides {cover} cannot be unmounted", f"! umount -l {cover}"))
    if sandbox.network:
        checks.append(("the network is on", "grep -qv -e 'lo:' -e '|' /proc/net/dev"))
    else:
        only_loopback = "! grep -v -e 'lo:' -e '|' /proc/net/dev | grep -q ."
        checks.append(("the network is off (loopback only)", only_loopback))
    if sandbox.limits.memory:
        kib = sandbox.limits.memory // 1024
        checks.append((f"the memory limit is set ({kib} KiB)", f'[ "$(ulimit -v)" = {kib} ]'))
        for folder in ("/tmp", "/dev/shm"):
            checks.append(
                (
                    f"{folder} holds no more than the memory limit",
                    f"[ \"$(df -Pk {folder} | awk 'NR == 2 {{print $2}}')\" -le {kib} ]",
                )
            )
    checks.append(("/dev takes no files", "! (echo x > /dev/.autoagent-probe) 2>/dev/null"))
    # Host services listen on socket files: none in the runtime folders, nor (as planted
    # here) in another visible folder, may be reachable.
    runtime = " ".join(shlex.quote(str(f)) for f in runtime_folders())
    if runtime:
        no_socket = f"! find {runtime} -type s 2>/dev/null | grep -q ."
        checks.append((f"no unix socket in {', '.join(map(str, runtime_folders()))}", no_socket))
    for path in sockets:
        checks.append((f"a host socket in {path.parent.parent} is covered", f"[ ! -S {path} ]"))
    session, user = _keyring_ids()
    if SYS_KEYCTL >= 0:
        python = shlex.quote(sys.executable)
        test = f"{python} -I -S -c {shlex.quote(_KEYRING_CHECK)} {SYS_KEYCTL} {session} {user}"
        checks.append(("a new session keyring; the agent's keyrings out of reach", test))
    # Last, so that where it lands in a private folder it does not show in the checks above;
    # whether it reached the real folder is seen from outside.
    checks.append(
        (
            f"{workspace.parent} (outside the workspace) is not changed",
            f"echo x > {shlex.quote(str(outside))}; true",
        )
    )
    script = "\n".join(
        f"if ( {test} ) >/dev/null 2>&1; then echo {_MARK}{i}=ok; else echo {_MARK}{i}=no; fi"
        for i, (_, test) in enumerate(checks)
    )
    result = run_process(
        ["/bin/sh", "-c", script],
        cwd=workspace,
        timeout=30,
        max_output_bytes=100_000,
        env=child_environment(),
        sandbox=sandbox,
    )
    passed = {line.split("=")[0]: line.endswith("=ok") for line in result.output.splitlines()}
    if outside.exists():  # the only way to know the write did not land is to look from here
        outside.unlink()
        passed[f"{_MARK}{len(checks) - 1}"] = False
    return [(check, passed.get(f"{_MARK}{i}", False)) for i, (check, _) in enumerate(checks)]
