"""File commands: read, write, append, delete and list files inside the workspace."""

from __future__ import annotations

from ...base.risk import Risk
from ...base.text import mark_untrusted, trim_middle
from .base import CommandContext, command

READ_CHARS = 8000  # what the model sees of a file; the rest stays on disk
LIST_ENTRIES = 300


@command(Risk.LOW, read_only=True)
def read_file(ctx: CommandContext, path: str) -> str:
    """Read a text file in the workspace. Long files show only their start and end."""
    text = ctx.workspace.read_text(path)
    shown = ctx.workspace.display(path)
    if "\x00" in text[:8192]:
        return f"{shown} looks like a binary file ({len(text):,} characters); it is not shown."
    header = f"{shown}: {len(text):,} characters"
    if len(text) > READ_CHARS:
        header += f", the middle cut to show {READ_CHARS:,}"
    return f"{header}.\n{mark_untrusted(f'the file {shown}', trim_middle(text, READ_CHARS))}"


@command(Risk.MEDIUM, makes_files=True)
def write_file(ctx: CommandContext, path: str, content: str) -> str:
    """Write text to a file in the workspace, replacing it if it exists; folders are created."""
    ctx.workspace.write_text(path, content)
    return f"Wrote {_characters(content)} to {ctx.workspace.display(path)}."


@command(Risk.MEDIUM, makes_files=True)
def append_to_file(ctx: CommandContext, path: str, content: str) -> str:
    """Append text to the end of a file in the workspace, creating it if needed."""
    ctx.workspace.append_text(path, content)
    return f"Appended {_characters(content)} to {ctx.workspace.display(path)}."


@command(Risk.HIGH)
def delete_file(ctx: CommandContext, path: str) -> str:
    """Delete a file, or an empty folder, in the workspace."""
    ctx.workspace.delete(path)
    return f"Deleted {ctx.workspace.display(path)}."


@command(Risk.LOW, read_only=True)
def list_files(ctx: CommandContext, directory: str = ".") -> str:
    """List the files under a folder of the workspace, recursively; folders end with "/"."""
    entries = ctx.workspace.list_dir(directory, limit=LIST_ENTRIES + 1)
    shown = ctx.workspace.display(directory)
    if not entries:
        return f"{shown} is empty."
    lines = entries[:LIST_ENTRIES]
    if len(entries) > LIST_ENTRIES:
        lines.append(f"[listing stopped at {LIST_ENTRIES} entries; list a subfolder to see more]")
    if any(entry.endswith("@") for entry in lines):
        lines.append("[entries ending with @ are symbolic links, which are never followed]")
    return f"Files under {shown}:\n" + "\n".join(lines)


def _characters(text: str) -> str:
    return f"{len(text):,} character{'' if len(text) == 1 else 's'}"


FILE_COMMANDS = (read_file, write_file, append_to_file, delete_file, list_files)
