"""The commands that look at runs and at the machine: runs, show, serve, sandbox.

Imports stay inside the commands, so `autoagent --help` stays fast."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import load_flags, new_console
from .logs import configure_logging
from .options import AllowNetwork, Workspace


def runs() -> None:
    """List runs: name, status, steps, cost and start time."""
    import time

    from rich.table import Table
    from rich.text import Text

    from ..store.runs import read_runs
    from .ui import one_line, outside

    console = new_console()
    settings = load_flags()
    found = read_runs(settings.home)
    if not found:
        console.print(Text.assemble("No runs yet in ", one_line(settings.home / "runs"), "."))
        return
    table = Table("run", "name", "status", "steps", "cost", "started")
    for r in found:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) if r.started else "?"
        table.add_row(
            one_line(r.run_id),
            one_line(r.name),
            one_line(r.label),
            Text(str(r.steps)),
            Text(f"${r.cost:.4f}"),
            Text(started),
        )
    console.print(table)
    for r in found:
        if r.problem:
            console.print(
                Text.assemble(one_line(r.run_id, "bold yellow"), ": ", outside(r.problem))
            )


def show(
    run_id: Annotated[str, typer.Argument(help="The run, as `autoagent runs` lists it.")],
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write the run's timeline to this file, as one HTML page."),
    ] = None,
) -> None:
    """Print a readable account of a run: goals, steps, commands, approvals, results, cost."""
    from ..base.errors import JournalError
    from ..store.journal import RunJournal
    from .report import render_run

    journal = RunJournal.open(load_flags().home, run_id)
    if html is not None:
        _write_html(journal, html)
        return
    state, problem = None, ""
    try:
        state = journal.load_checkpoint()
    except JournalError as exc:
        problem = str(exc)
    entries = journal.iter_events()
    first = next(entries, None)
    if first is None:
        raise JournalError(problem or f"Run {run_id} has no events.jsonl to show.")
    console = new_console(settled=True)
    render_run(console, run_id, itertools.chain([first], entries), state, problem)


def _write_html(journal: Any, target: Path) -> None:
    from rich.text import Text

    from .pages import export_html
    from .timeline import load_timeline
    from .ui import one_line

    page = export_html(load_timeline(journal))
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"Cannot write {target}: {exc.strerror}.") from exc
    new_console().print(Text.assemble("Wrote ", one_line(target), "."))


def serve(
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            help="The port (0: any free one; default: that of AUTOAGENT_CONSOLE_URL, 8765).",
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option("--host", help="The address to listen on; anything but 127.0.0.1 is exposed."),
    ] = "127.0.0.1",
) -> None:
    """Open a web console on this machine: runs, their timelines, requests to answer."""
    from urllib.parse import urlsplit

    from .console import ConsoleServer, console_url

    settings = load_flags()
    configure_logging(settings)
    if port is None:  # where the links in notifications point
        port = urlsplit(settings.console_url).port or 8765
    from .fleet import fleet_lister

    fleet = fleet_lister(settings)
    server = ConsoleServer(settings.home, host, port, settings.rewind_file_limit, fleet)
    if not server.console.loopback:
        print(
            f"Warning: the console listens on {host}, not only on this machine, over plain "
            "HTTP: anyone who can reach it and learns the token (which crosses the network "
            "unencrypted) can answer the runs' requests.",
            flush=True,
        )
    print(f"The web console: {console_url(server, host)}", flush=True)
    print("It only records answers; the runs apply them. Ctrl-C stops it.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nConsole stopped.", flush=True)
    finally:
        server.server_close()
    if fleet is not None:  # temporalio's core threads can abort a finalizing interpreter
        os._exit(0)


def sandbox(
    allow_network: AllowNetwork = False,
    workspace: Workspace = None,
) -> None:
    """Show the sandbox programs run in (mechanism, writable paths, network, limits); probe it."""
    from rich.text import Text

    from ..agent.runner import check_folders
    from ..tools.doctor import probe_report
    from ..tools.sandbox import build_sandbox
    from .ui import outside

    console = new_console()
    settings = load_flags(allow_network=allow_network or None, workspace=workspace)
    _, workspace_root = check_folders(settings)
    workspace_root.mkdir(parents=True, exist_ok=True)
    box = build_sandbox(settings, workspace_root)
    for line in box.describe():
        console.print(outside(line))
    if not box.confined:
        raise typer.Exit(0 if box.unconfined_by_choice else 1)
    console.print("Probe (a shell inside the sandbox):")
    failed = False
    for check, ok in probe_report(box):
        failed = failed or not ok
        console.print(Text.assemble(f"  {'ok  ' if ok else 'FAIL'} ", outside(check)))
    if failed:
        raise typer.Exit(1)
