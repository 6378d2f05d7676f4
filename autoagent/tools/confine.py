"""The Landlock launcher: confine one program without bubblewrap.

Run as a script with the standard library only (`python -I -S confine.py SPEC`), where SPEC is
JSON naming the program, its folder, the writable folders, the hidden paths and the network.
It builds what bubblewrap would:

- the host's keyrings out of reach (see isolate_from_host, which bubblewrap's runs use too);
- new user, mount, PID, IPC and UTS namespaces (and a network one, with only loopback, unless
  the network is allowed), the caller's uid and gid mapped to themselves;
- a fresh /proc for the new PID namespace, a minimal read-only /dev, a private /tmp and
  /dev/shm of bounded size, empty folders over the hidden ones and /dev/null over hidden files
  and over the host's unix sockets still in sight, the workspace bound back in place;
- Landlock: everything readable and executable, only the workspace, /tmp and /dev writable
  (Landlock also forbids the program to unmount or remount any of the above), and, from
  Landlock ABI 6, no abstract unix socket made outside the sandbox reachable;
- a small init as PID 1 that reaps orphans; when the program ends, it ends, and the kernel
  kills whatever is left in the namespace. Both it and this launcher die with their parent.

Exit status: the program's, or the same signal that killed it; 125 when confinement failed
(the reason goes to stderr).

`python -I -S confine.py --isolated PROGRAM ARG...` only isolates from the host's keyrings and
abstract sockets, then runs PROGRAM (bubblewrap, when nothing could do it before exec).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
MACHINE = os.uname().machine
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(MACHINE, -1)
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}.get(MACHINE, -1)
LINUX_CAPABILITY_VERSION_3 = 0x20080522
KEYCTL_JOIN_SESSION_KEYRING = 1
ISOLATED = "--isolated"

# The keyring calls (add_key, request_key, keyctl) of each ABI a process of this machine can
# call the kernel through: (AUDIT_ARCH_*, syscall numbers, mask of the number's ABI bits).
KEYRING_SYSCALLS = {
    "x86_64": [(0xC000003E, (248, 249, 250), 0xBFFFFFFF), (0x40000003, (286, 287, 288), 0)],
    "aarch64": [(0xC00000B7, (217, 218, 219), 0), (0x40000028, (309, 310, 311), 0)],
}.get(MACHINE, [])
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
BPF_LD_ABS, BPF_AND, BPF_JEQ, BPF_RET = 0x20, 0x54, 0x15, 0x06

# Landlock (the same syscall numbers on every architecture).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 2, 1 << 3
FS_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
# Every filesystem right of ABI 1 (bits 0-12), then REFER (2), TRUNCATE (3), IOCTL_DEV (5).
FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
FS_LATEST = (1 << 16) - 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1  # ABI 6

# An empty folder over a hidden one (and the minimal /dev): too small to hold host memory.
COVER = "mode=755,size=64k"
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40
FAILED = 125

_libc = ctypes.CDLL(None, use_errno=True)


class ConfineError(Exception):
    pass


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def _keyring_filter() -> bytes:
    """A seccomp program: the keyring calls fail with EPERM, everything else is allowed."""
    code: list[tuple[int, int, int, int]] = [(BPF_LD_ABS, 0, 0, 4)]  # the call's ABI
    deny_jumps = []
    for arch, numbers, mask in KEYRING_SYSCALLS:
        block = 2 + (1 if mask else 0) + len(numbers)  # what follows the ABI test
        code.append((BPF_JEQ, 0, block, arch))
        code.append((BPF_LD_ABS, 0, 0, 0))  # the call's number
        if mask:
            code.append((BPF_AND, 0, 0, mask))
        for number in numbers:
            deny_jumps.append(len(code))
            code.append((BPF_JEQ, 0, 0, number))
        code.append((BPF_RET, 0, 0, SECCOMP_RET_ALLOW))
    code.append((BPF_RET, 0, 0, SECCOMP_RET_ALLOW))
    deny = len(code)
    code.append((BPF_RET, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM))
    for at in deny_jumps:
        op, _, false, k = code[at]
        code[at] = (op, deny - at - 1, false, k)
    return b"".join(struct.pack("HBBI", *insn) for insn in code)


_KEYRING_FILTER = _keyring_filter()
# Made before any fork, so that a child between fork and exec only makes system calls.
_KEYRING_PROGRAM = ctypes.create_string_buffer(_KEYRING_FILTER, len(_KEYRING_FILTER))
_KEYRING_FPROG = _SockFprog(
    len(_KEYRING_FILTER) // 8, ctypes.cast(_KEYRING_PROGRAM, ctypes.c_char_p)
)


def isolate_from_host(abi: int | None = None) -> None:
    """Keep the host's keyrings and abstract unix sockets out of reach of this process and
    everything it starts (nothing here needs capabilities; call it before exec).

    A new, empty session keyring replaces the agent's; then add_key, request_key and keyctl
    fail with EPERM, since a keyring of the user's could otherwise be linked in again by its
    number (the user's and user-session keyrings let their owner do so). From Landlock ABI 6
    (`abi`, when known), no abstract unix socket made outside this process's descendants can be
    connected to (with the network on, a new network namespace does not hide them).
    """
    if SYS_KEYCTL >= 0:
        _libc.syscall(SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if KEYRING_SYSCALLS:
        _check(
            _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(_KEYRING_FPROG), 0, 0),
            "seccomp (keeping the keyrings out of reach)",
        )
    if (abi if abi is not None else landlock_abi()) >= 6:
        _landlock_self(0, SCOPE_ABSTRACT_UNIX_SOCKET, {})


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise ConfineError(f"{what}: {os.strerror(code)}")
    return result


def landlock_abi() -> int:
    """The Landlock ABI version of this kernel; 0 when Landlock is missing or disabled."""
    _libc.syscall.restype = ctypes.c_long
    version = _libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION
    )
    return max(int(version), 0)


def _restrict(readable: list[str], writable: list[str]) -> None:
    abi = landlock_abi()
    if abi < 1:
        raise ConfineError(
            "Landlock is not available (kernel 5.13 or later, enabled in the LSM list)"
        )
    handled = FS_BY_ABI.get(abi, FS_LATEST)
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET if abi >= 6 else 0
    rules = {path: FS_READ & handled for path in readable}
    rules |= {path: handled for path in writable}
    _landlock_self(handled, scoped, rules)


def _landlock_self(handled: int, scoped: int, rules: dict[str, int]) -> None:
    """Put this process under a new Landlock domain: the filesystem rights in `handled` only
    where `rules` grant them (path -> rights beneath it), and the `scoped` IPC kept inside."""
    # struct landlock_ruleset_attr: handled_access_fs, handled_access_net (ABI 4), scoped (ABI 6)
    attr = struct.pack("QQQ", handled, 0, scoped) if scoped else struct.pack("Q", handled)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(
        _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), 0),
        "landlock_create_ruleset",
    )
    try:
        for path, access in rules.items():
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                rule = struct.pack("=Qi", access, fd)
                rbuf = ctypes.create_string_buffer(rule, len(rule))
                _check(
                    _libc.syscall(
                        SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, rbuf, 0
                    ),
                    f"landlock_add_rule {path}",
                )
            finally:
                os.close(fd)
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    def enc(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    _check(
        _libc.mount(
            enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data or None)
        ),
        f"mount {target}",
    )


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def _make_target(path: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def _bind_back(fd: int, path: str, is_dir: bool, read_only: bool) -> None:
    """Bind what `fd` (opened before it was covered) stands for at `path` again."""
    _make_target(path, is_dir)
    _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    if read_only:
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _build_filesystem(spec: dict[str, Any]) -> None:
    workspace = spec["workspace"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Everything that must come back after it is covered, opened while it is still visible.
    keep = [(path, True) for path in spec["readable"] if os.path.exists(path)]
    keep = [(p, r) for p, r in keep if any(_under(p, h) for h in [*spec["hidden"], "/tmp"])]
    keep.append((workspace, False))
    opened = [
        (os.open(path, os.O_PATH | os.O_CLOEXEC), path, os.path.isdir(path), read_only)
        for path, read_only in keep
    ]
    devices = [(os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC), name) for name in DEVICES
               if os.path.exists(f"/dev/{name}")]  # fmt: skip
    covered: list[str] = ["/tmp"]
    tmp = _tmpfs_options("1777", spec["tmp_size"])
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmp)
    hidden_inside = []
    for path in sorted(spec["hidden"], key=len):
        if _under(path, workspace):
            hidden_inside.append(path)
        elif os.path.exists(path) and not any(_under(path, c) for c in covered):
            if os.path.isdir(path):
                _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, COVER)
                covered.append(path)
            else:
                _mount("/dev/null", path, None, MS_BIND)
    # Small, and read-only once made: only /dev/shm, of bounded size, is for files.
    _mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, COVER)
    for fd, name in devices:
        _make_target(f"/dev/{name}", False)
        _mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, MS_BIND)
        os.close(fd)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm", 0o1777)
    _mount(None, "/dev", None, MS_REMOUNT | MS_NOSUID | MS_RDONLY, COVER)
    shm = _tmpfs_options("1777", spec["shm_size"])
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, shm)
    *readable, (space_fd, _, space_is_dir, _) = opened  # the workspace comes back last
    for fd, path, is_dir, read_only in readable:
        _bind_back(fd, path, is_dir, read_only)
        os.close(fd)
    # A hidden path inside a folder shown again (the project's .env) is hidden once more.
    shown = [path for _, path, _, _ in readable]
    for path in sorted(spec["hidden"], key=len):
        if _under(path, workspace) or not any(path != s and _under(path, s) for s in shown):
            continue
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, COVER)
        elif os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND)
    _bind_back(space_fd, workspace, space_is_dir, False)
    os.close(space_fd)
    for path in spec["sockets"]:
        try:
            _mount("/dev/null", path, None, MS_BIND)
        except ConfineError:
            if os.path.exists(path):  # else it went away since it was listed
                raise
    for path in hidden_inside:
        if os.path.isfile(path):
            _mount("/dev/null", path, None, MS_BIND)
        elif os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, COVER)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _tmpfs_options(mode: str, size: int | None) -> str:
    return f"mode={mode}" + (f",size={size}" if size else "")


def _forbid_user_namespaces() -> None:
    """No nested user namespace: its capabilities would not be ours to drop."""
    _write("/proc/sys/user/max_user_namespaces", "0")


def _drop_capabilities() -> None:
    """Leave no capability, now or after exec (the caller is root in its user namespace, and
    exec gives root every capability still in the bounding set)."""
    with open("/proc/sys/kernel/cap_last_cap") as file:
        last = int(file.read())
    for cap in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "dropping capabilities")
    if SYS_CAPSET < 0:
        return  # the empty bounding set alone keeps exec from granting any
    header = struct.pack("Ii", LINUX_CAPABILITY_VERSION_3, 0)
    data = bytes(24)  # effective, permitted and inheritable, twice 32 bits each: all empty
    _check(_libc.syscall(SYS_CAPSET, header, data), "dropping capabilities")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING)
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, request)


def _set_limits(limits: dict[str, int | None]) -> None:
    names = {
        "memory": resource.RLIMIT_AS,
        "file_size": resource.RLIMIT_FSIZE,
        "processes": resource.RLIMIT_NPROC,
    }
    for name, which in names.items():
        value = limits.get(name)
        if value is not None:
            resource.setrlimit(which, (value, value))
    if (cpu := limits.get("cpu_seconds")) is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _die_with_parent(expected_parent: int) -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected_parent:
        os._exit(FAILED)  # the parent is already gone


def _init(spec: dict[str, Any], status_fd: int, alive_fd: int) -> None:
    """PID 1 of the new namespace: set the sandbox up, start the program, reap until it ends."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # Its parent is outside the namespace (getppid() is 0): the launcher holds the other end
    # of `alive_fd` open while it lives, so end of file means it is already gone.
    if select.select([alive_fd], [], [], 0)[0]:
        os._exit(FAILED)
    _build_filesystem(spec)
    if not spec["network"]:
        _loopback_up()
    _forbid_user_namespaces()
    _restrict(readable=["/"], writable=[spec["workspace"], "/tmp", "/dev"])
    program = os.fork()
    if program == 0:
        try:
            os.setsid()
            _set_limits(spec["limits"])
            os.chdir(spec["cwd"])
            _drop_capabilities()
            os.execvp(spec["argv"][0], spec["argv"])
        except OSError as exc:
            sys.stderr.write(f"Could not start {spec['argv'][0]!r}: {exc.strerror}.\n")
            os._exit(127 if exc.errno == errno.ENOENT else 126)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(FAILED)
        if pid == program:
            os.write(status_fd, struct.pack("i", status))
            os._exit(0)  # everything else in the namespace is killed with us


def main(spec: dict[str, Any]) -> int:
    _die_with_parent(spec["parent"])
    isolate_from_host()
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if not spec["network"]:
        flags |= CLONE_NEWNET
    _check(_libc.unshare(flags), "unshare (user namespaces may be disabled)")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    read_end, write_end = os.pipe()
    alive_read, alive_write = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(read_end)
        os.close(alive_write)
        try:
            _init(spec, write_end, alive_read)
        except (ConfineError, OSError) as exc:
            sys.stderr.write(f"Sandbox (landlock) failed: {exc}\n")
        os._exit(FAILED)
    os.close(write_end)
    os.waitpid(init, 0)
    data = os.read(read_end, 4)
    if len(data) < 4:
        return FAILED
    (status,) = struct.unpack("i", data)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else FAILED


def run_isolated(argv: list[str]) -> int:
    isolate_from_host()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    try:
        if sys.argv[1] == ISOLATED:
            sys.exit(run_isolated(sys.argv[2:]))
        sys.exit(main(json.loads(sys.argv[1])))
    except (ConfineError, OSError) as exc:
        sys.stderr.write(f"Sandbox (landlock) failed: {exc}\n")
        sys.exit(FAILED)
