"""Commands that run code: Python snippets, Python files of the workspace, and programs.

Every one of them runs in the sandbox (sandbox.py); each observation says in which mode it ran.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime

from ...base.errors import CommandError
from ...base.risk import Risk
from ...base.text import mark_untrusted, strip_terminal_escapes
from ..process import child_environment, run_process
from ..sandbox import Sandbox, build_sandbox
from ..shell import ShellPolicy, shell_argv
from .base import CommandContext, command

SNIPPETS = "scripts"  # snippets stay in the workspace so the human can see what ran


@command(Risk.HIGH)
def execute_python_code(ctx: CommandContext, code: str) -> str:
    """Save Python code as a new file under scripts/ in the workspace and run it there.

    The workspace is the current folder, and the only one it may write besides a private
    /tmp. Print what you need to see: only the output comes back, with its start and end kept
    when it is long.
    """
    sandbox_of(ctx).check_can_run()  # before the snippet is saved: refused means nothing done
    path = f"{SNIPPETS}/snippet_{datetime.now():%Y%m%d-%H%M%S-%f}.py"
    ctx.workspace.write_text(path, code, overwrite=False)
    file = ctx.workspace.resolve(path)
    # The label names no file: the same code run twice must give the same observation,
    # or a loop of it would look like progress.
    return _run(ctx, [sys.executable, "-u", str(file)], "python snippet")


@command(Risk.HIGH)
def execute_python_file(ctx: CommandContext, path: str) -> str:
    """Run a .py file of the workspace with Python, the workspace being the current folder."""
    shown = ctx.workspace.display(path)
    if not shown.endswith(".py"):
        raise CommandError(f"{shown!r} is not a .py file; execute_python_file runs only those.")
    file = ctx.workspace.resolve(path)
    return _run(ctx, [sys.executable, "-u", str(file)], f"python {shown}")


@command(Risk.HIGH, enabled_by="shell_enabled")
def execute_shell(ctx: CommandContext, command_line: str) -> str:
    """Run a shell command line (`sh -c`, pipes and redirections work) in the workspace.

    Unless the human chose a program list: then one program runs, with `;`, `|` and the like
    passed as plain arguments, and only the programs the human's policy allows may run.
    """
    argv = shell_argv(command_line, ShellPolicy.from_settings(ctx.settings), ctx.workspace.root)
    return _run(ctx, argv, command_line)


def sandbox_of(ctx: CommandContext) -> Sandbox:
    """The context's sandbox, built from its settings the first time."""
    if ctx.sandbox is None:
        ctx.sandbox = build_sandbox(ctx.settings, ctx.workspace.root)
    return ctx.sandbox


def _run(ctx: CommandContext, argv: list[str], label: str) -> str:
    settings = ctx.settings
    sandbox = sandbox_of(ctx)
    sandbox.check_can_run()
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")[:60]
    save_to = ctx.run_dir / "outputs" / f"{datetime.now():%Y%m%d-%H%M%S-%f}_{name}.log"
    result = run_process(
        argv,
        cwd=ctx.workspace.root,
        timeout=settings.command_timeout,
        max_output_bytes=settings.max_output_bytes,
        save_to=save_to,
        env=child_environment(allowed=settings.child_env),
        sandbox=sandbox,
    )
    if result.timed_out:
        status = (
            f"Timed out after {settings.command_timeout:g} s; the program and everything "
            "it started were stopped."
        )
    elif result.exit_code < 0:
        status = f"Killed by signal {-result.exit_code}."
    else:
        status = f"Exit code {result.exit_code}."
    if (limit := sandbox.explain(result.exit_code, result.output)) is not None:
        status = f"{status[:-1]}; {limit}."
    status += f" Ran {sandbox.label()}."
    if result.truncated:
        status += (
            f" The output was {result.full_output_bytes:,} bytes: only its start and end are"
            " shown (the full output is saved for the human)."
        )
    output = strip_terminal_escapes(result.output).rstrip("\n") or "(no output)"
    return f"{status}\n{mark_untrusted(f'the program {label!r}', output)}"


EXECUTE_COMMANDS = (execute_python_code, execute_python_file, execute_shell)
