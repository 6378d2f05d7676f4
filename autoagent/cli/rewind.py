"""`autoagent diff` and `autoagent rewind`: what a run's steps changed in its workspace, and
putting it back as it was. Imports stay inside the commands, so `autoagent --help` is fast."""

from __future__ import annotations

import difflib
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from .common import load_flags, new_console

if TYPE_CHECKING:
    from ..store.manifest import Entry, FileChange
    from ..store.snapshots import Snapshots

RunId = Annotated[str, typer.Argument(help="The run, as `autoagent runs` lists it.")]
TEXT_LIMIT = 2_000_000  # larger files are summed up on one line, as binary ones are


def diff(
    run_id: RunId,
    step: Annotated[
        int | None, typer.Option("--step", min=1, help="Only what this step changed.")
    ] = None,
) -> None:
    """Show what a step (or the whole run) changed in the workspace: unified diffs for text,
    one line for a binary file."""
    from rich.text import Text

    from ..agent.rewind import run_workspace
    from ..base.errors import SnapshotError
    from ..store.journal import RunJournal
    from ..store.manifest import changes_between
    from ..store.snapshots import Snapshots
    from .ui import outside

    settings = load_flags()
    journal = RunJournal.open(settings.home, run_id)
    snapshots = Snapshots(journal.run_dir, run_workspace(journal), settings.rewind_file_limit)
    captures = [c for c in snapshots.captures() if c.phase != "rewind"]
    if step is not None:
        pair = snapshots.of_step(step)
        if pair is None:
            raise SnapshotError(f"Step {step} of run {run_id} changed nothing in the workspace.")
        first, last = pair
    elif captures:
        first, last = captures[0], captures[-1]
    else:
        raise SnapshotError(f"Run {run_id} has not changed its workspace.")
    before, after = snapshots.manifest(first.manifest), snapshots.manifest(last.manifest)
    console = new_console()
    changes = changes_between(before, after)
    if not changes:
        console.print(Text("No changes."))
    for change in changes:
        for line, style in diff_of(
            snapshots, change, before.get(change.path), after.get(change.path)
        ):
            console.print(outside(line, style), soft_wrap=True)


def diff_of(
    snapshots: Snapshots, change: FileChange, old: Entry | None, new: Entry | None
) -> list[tuple[str, str]]:
    """The lines that show one change, each with its style."""
    shown = f"{change.path}/" if change.kind == "dir" else change.path
    if change.kind != "file":
        return [(f"{change.change}: {change.describe()}", "bold")]
    old_text, new_text = _text(snapshots, old), _text(snapshots, new)
    if old_text is None or new_text is None:
        return [(f"{change.change}: {change.describe()}" + _binary(old, new), "bold")]
    lines: list[tuple[str, str]] = []
    if None not in (change.mode_before, change.mode_after) and (
        change.mode_before != change.mode_after
    ):
        lines.append((f"mode {change.mode_before:o} -> {change.mode_after:o}: {shown}", "bold"))
    for line in difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=f"a/{shown}" if old else "/dev/null",
        tofile=f"b/{shown}" if new else "/dev/null",
    ):
        line = line.rstrip("\n")
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
        lines.append((line, "bold" if line.startswith(("+++", "---")) else style))
    return lines or [(f"{change.change}: {change.describe()}", "bold")]


def _binary(old: Entry | None, new: Entry | None) -> str:
    kept = all(e is None or e.kept for e in (old, new))
    return "; binary" if kept else ""


def _text(snapshots: Snapshots, entry: Entry | None) -> str | None:
    """A file's kept content as text; '' for none; None when binary, too big or not kept."""
    if entry is None:
        return ""
    if not entry.kept or entry.size > TEXT_LIMIT:
        return None
    try:
        data = b"".join(snapshots.content(entry.ref))
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def rewind(
    run_id: RunId,
    to_step: Annotated[
        int | None,
        typer.Option("--to-step", min=1, help="Put the workspace back as it was before this step."),
    ] = None,
    undo: Annotated[
        bool,
        typer.Option("--undo", help="Undo the last rewind (the workspace as it was before it)."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask first.")] = False,
) -> None:
    """Put a run's workspace back as it was before a step: files written by any command,
    deleted files and folders back, later files removed, modes and links restored."""
    from rich.text import Text

    from ..agent.rewind import prepare_rewind
    from ..store.journal import RunJournal
    from ..store.manifest import summary
    from .ui import labelled, outside

    if (to_step is None) == (not undo):
        raise typer.BadParameter("Give either --to-step N or --undo.")
    settings = load_flags()
    journal = RunJournal.open(settings.home, run_id)
    prepared = prepare_rewind(journal, settings.rewind_file_limit, to_step=to_step, undo=undo)
    console = new_console()
    plan = prepared.plan
    if plan.empty:
        prepared.cancel()
        console.print(Text("The workspace is already as it was then: nothing to change."))
        return
    what = f"before step {to_step}" if to_step is not None else "before the last rewind"
    console.print(Text(f"Rewinding {run_id}'s workspace to how it was {what} will:"))
    for change in plan.changes:
        verb = {"added": "bring back", "deleted": "remove", "modified": "restore"}[change.change]
        console.print(Text.assemble(f"  {verb} ", outside(change.describe())))
    for lost in plan.lost:
        console.print(labelled("  cannot bring back ", "bold red", outside(lost)))
    if not yes:
        if not sys.stdin.isatty():
            prepared.cancel()
            raise typer.BadParameter(
                "Nothing was changed: confirm with --yes when not at a terminal."
            )
        if not typer.confirm("Rewind?", default=False):
            prepared.cancel()
            console.print(Text("Nothing was changed."))
            raise typer.Exit(1)
    event = prepared.apply()
    console.print(
        labelled(
            "Rewound: ",
            "bold magenta",
            outside(summary(event.changes)),
        )
    )
    if event.lost:
        console.print(labelled("Not brought back: ", "bold red", outside(", ".join(event.lost))))
    console.print(
        Text(
            f"Undo it with `autoagent rewind {run_id} --undo`; go on with "
            f"`autoagent resume {run_id} --from-step N`."
        )
    )
