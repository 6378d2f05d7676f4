"""A quick probe of the sandbox, for `autoagent sandbox`: a shell inside checks each promise."""

from __future__ import annotations

import shlex
from pathlib import Path

from .process import child_environment, run_process
from .sandbox import Sandbox

_MARK = "PROBE"


def probe_report(sandbox: Sandbox) -> list[tuple[str, bool]]:
    """(check, passed) for each promise of `sandbox`, checked from inside it."""
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
    # What root inside could do with capabilities or a writable /proc (bwrap run as root keeps
    # them unless told); each is checked by trying it, harmlessly where it is refused.
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
    # The private /tmp hides the host's; a hidden folder elsewhere has a cover of its own.
    covers = [Path("/tmp")]
    covers += [
        p for p in sandbox.hidden
        if p.is_dir() and not p.is_relative_to(workspace) and not p.is_relative_to("/tmp")
    ][:1]  # fmt: skip
    for cover in covers:
        checks.append((f"what hides {cover} cannot be unmounted", f"! umount -l {cover}"))
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
    if sandbox.network:
        checks.append(("the network is on", "grep -qv -e 'lo:' -e '|' /proc/net/dev"))
    else:
        only_loopback = "! grep -v -e 'lo:' -e '|' /proc/net/dev | grep -q ."
        checks.append(("the network is off (loopback only)", only_loopback))
    if sandbox.limits.memory:
        kib = sandbox.limits.memory // 1024
        checks.append((f"the memory limit is set ({kib} KiB)", f'[ "$(ulimit -v)" = {kib} ]'))
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
