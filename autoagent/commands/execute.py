"""Commands that run code: Python snippets, Python files of the workspace, and programs."""

from __future__ import annotations

import re
import sys
from datetime import datetime

from ..errors import CommandError
from ..process import run_process
from ..shell import ShellPolicy, shell_argv
from ..text import mark_untrusted, strip_terminal_escapes
from .base import CommandContext, Risk, command

SNIPPETS = "scripts"  # snippets stay in the workspace so the human can see what ran


@command(Risk.HIGH)
def execute_python_code(ctx: CommandContext, code: str) -> str:
    """Save Python code as a new file under scripts/ in the workspace and run it there.

    The workspace is the current folder. Print what you need to see: only the output comes
    back, with its start and end kept when it is long.
    """
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


@command(Risk.HIGH)
def execute_shell(ctx: CommandContext, command_line: str) -> str:
    """Run one program with arguments in the workspace, if the shell is enabled.

    No shell is involved: pipes, redirections, `;`, `&&` and `$(...)` are passed as plain
    arguments. Only the programs the human's policy allows may run.
    """
    argv = shell_argv(command_line, ShellPolicy.from_settings(ctx.settings), ctx.workspace.root)
    return _run(ctx, argv, command_line)


def _run(ctx: CommandContext, argv: list[str], label: str) -> str:
    settings = ctx.settings
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")[:60]
    save_to = ctx.run_dir / "outputs" / f"{datetime.now():%Y%m%d-%H%M%S-%f}_{name}.log"
    result = run_process(
        argv,
        cwd=ctx.workspace.root,
        timeout=settings.command_timeout,
        max_output_bytes=settings.max_output_bytes,
        save_to=save_to,
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
    if result.truncated:
        status += (
            f" The output was {result.full_output_bytes:,} bytes: only its start and end are"
            " shown (the full output is saved for the human)."
        )
    output = strip_terminal_escapes(result.output).rstrip("\n") or "(no output)"
    return f"{status}\n{mark_untrusted(f'the program {label!r}', output)}"


EXECUTE_COMMANDS = (execute_python_code, execute_python_file, execute_shell)
