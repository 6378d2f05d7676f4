"""`autoagent fleet`: many unattended runs on Temporal (fleet/), with the `fleet` extra."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ..base.errors import ConfigError
from .common import load_flags, new_console

if TYPE_CHECKING:
    from rich.console import Console
    from temporalio.client import Client

    from ..base.settings import Settings
    from ..fleet.client import RunState

fleet_app = typer.Typer(
    help="Many unattended runs on Temporal: a server, workers on any machine, one inbox.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., None])


def _leaves_at_once(command: F) -> F:
    """Exit without tearing the interpreter down once the command is done: temporalio's core
    threads can abort a finalizing interpreter (Fatal Python error: PyGILState_Release)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from ..base.errors import AutoAgentError
        from .ui import labelled, outside

        code = 0
        try:
            command(*args, **kwargs)
        except AutoAgentError as exc:
            new_console(stderr=True).print(labelled("Error: ", "bold red", outside(exc)))
            code = 1
        except typer.Exit as exc:
            code = exc.exit_code
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    return wrapper  # type: ignore[return-value]


def _with_client(settings: Settings, work: Callable[[Client], Awaitable[T]]) -> T:
    _need_extra()
    from temporalio.service import RPCError

    from ..fleet.client import connect, refused

    async def go() -> T:
        client = await connect(settings)
        try:
            return await work(client)
        except RPCError as exc:
            raise refused(exc, settings) from exc

    return asyncio.run(go())


def _need_extra() -> None:
    try:
        import temporalio  # noqa: F401
    except ImportError:
        raise ConfigError(
            "`autoagent fleet` needs the fleet extra: scripts/install.sh fleet "
            "(or pip install 'autoagent[fleet]')."
        ) from None


def fleet_lister(settings: Settings) -> Callable[[], tuple[list[RunState], str]] | None:
    """For the console: the fleet's runs, or why they cannot be had; None when this data
    folder has no fleet (no `fleet server` here, no AUTOAGENT_TEMPORAL_ADDRESS set) or the
    fleet extra is not installed."""
    from ..fleet.worker import SERVER_FILE

    home = settings.home.expanduser().resolve()
    named = "AUTOAGENT_TEMPORAL_ADDRESS" in os.environ or settings.temporal_address != (
        type(settings).model_fields["temporal_address"].default
    )
    if not (named or (home / "fleet" / SERVER_FILE).is_file()):
        return None
    try:
        _need_extra()
    except ConfigError:
        return None

    def listed() -> tuple[list[RunState], str]:
        from ..base.errors import AutoAgentError
        from ..fleet.client import list_runs

        try:
            return _with_client(settings, list_runs), ""
        except AutoAgentError as exc:
            return [], str(exc)

    return listed


@fleet_app.command("server")
def fleet_server(
    port: Annotated[int, typer.Option("--port", help="Temporal's port on 127.0.0.1.")] = 7233,
    memory_port: Annotated[
        int, typer.Option("--memory-port", help="The shared memory server's port.")
    ] = 8000,
) -> None:
    """Start Temporal's dev server and a memory server for this machine (data in AUTOAGENT_HOME)."""
    _need_extra()
    from ..fleet.server import serve

    settings = load_flags()
    console = new_console()

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (&)
        signal.signal(signum, interrupt)
    home = settings.home.expanduser().resolve()
    from rich.text import Text

    code = serve(home, port, memory_port, lambda line: console.print(Text(line + " Ctrl-C stops.")))
    raise typer.Exit(code)


@fleet_app.command("worker")
@_leaves_at_once
def fleet_worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Runs at once on this worker.")
    ] = 2,
) -> None:
    """Take runs from the fleet's queue and run each as its own process, until Ctrl-C."""
    _need_extra()
    from rich.text import Text

    from ..fleet.worker import place_of, serve

    settings = load_flags()
    console = new_console()
    place = place_of(settings)
    if place.memory_url is None and concurrency > 1:
        note = (
            "NOTE: no memory server (AUTOAGENT_MEMORY_URL, or `autoagent fleet server` on this "
            "machine): runs share the embedded store, which one run at a time can open."
        )
        console.print(Text(note))

    def ready(identity: str) -> None:
        said = (
            f"Worker {identity} takes runs from queue {settings.fleet_queue!r} at "
            f"{settings.temporal_address}, {concurrency} at once; data in {place.home}. "
            "Ctrl-C stops it (its runs go on elsewhere)."
        )
        console.print(Text(said))

    asyncio.run(serve(settings, concurrency, ready))


@fleet_app.command("submit")
@_leaves_at_once
def fleet_submit(
    fleet_file: Annotated[
        Path | None,
        typer.Argument(help="A fleet file: agents: [{name, role, goals, ...}] (default: one)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The agent's name.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="The agent's role.")] = None,
    goal: Annotated[
        list[str] | None, typer.Option("--goal", help="A goal (repeat, at most 5).")
    ] = None,
    workspace: Annotated[
        Path | None, typer.Option("--workspace", help="Its workspace (same path on every worker).")
    ] = None,
    budget: Annotated[
        float | None, typer.Option("--budget", min=0.0, help="Stop at this many US dollars.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Its execution model.")] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Hard cap on its steps.")
    ] = None,
) -> None:
    """Submit one agent (flags, or ai_settings.yaml) or every agent of a fleet file; print
    their run ids. Nothing is submitted unless all of them are valid."""
    _need_extra()
    from ..agent.profile import load_profile, profile_file_exists
    from ..fleet.client import submit
    from ..fleet.spec import entry_of, job_of, load_fleet

    settings = load_flags()
    if fleet_file is not None:
        if name or role or goal:
            raise typer.BadParameter("give the agents in the fleet file or by flags, not both")
        entries = load_fleet(fleet_file)
    else:
        if not (name and role and goal):
            if not profile_file_exists(settings.ai_settings):
                raise ConfigError(
                    "Give --name, --role and --goal, a fleet file, or an ai_settings.yaml here."
                )
            profile = load_profile(settings.ai_settings)
            name, role, goal = name or profile.name, role or profile.role, goal or profile.goals
        entries = [
            entry_of(
                name=name,
                role=role,
                goals=goal,
                workspace=workspace,
                budget=budget,
                model=model,
                max_steps=max_steps,
            )
        ]
    jobs = [
        job_of(
            entry,
            base=Path.cwd(),
            heartbeat_timeout=settings.fleet_heartbeat_timeout,
            attempts=settings.fleet_attempts,
        )
        for entry in entries
    ]
    _with_client(settings, lambda client: submit(client, settings, jobs, _say_id))


def _say_id(run_id: str) -> None:
    print(run_id, flush=True)


@fleet_app.command("list")
@_leaves_at_once
def fleet_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Every fleet run: its state, worker, step and spend."""
    _need_extra()
    from ..fleet.client import list_runs

    states = _with_client(load_flags(), list_runs)
    if as_json:
        for state in states:
            print(json.dumps(state.as_json(), ensure_ascii=False))
        return
    console = new_console()
    if not states:
        console.print("No fleet runs yet: `autoagent fleet submit` starts some.")
    for state in states:
        _show(console, state)


@fleet_app.command("status")
@_leaves_at_once
def fleet_status(
    run_id: Annotated[str, typer.Argument(help="The run's id, as submit printed it.")],
    as_json: Annotated[bool, typer.Option("--json", help="As one JSON object.")] = False,
) -> None:
    """One fleet run: queued, running (where, at which step, spend), waiting for a human (on
    what), finished, stopped, failed (why) or cancelled."""
    _need_extra()
    from ..fleet.client import status

    state = _with_client(load_flags(), lambda client: status(client, run_id))
    if as_json:
        print(json.dumps(state.as_json(), ensure_ascii=False))
    else:
        _show(new_console(), state)


@fleet_app.command("cancel")
@_leaves_at_once
def fleet_cancel(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
) -> None:
    """Stop a fleet run at its next safe point, as Ctrl-C does; `autoagent resume ID` can
    continue it by hand later."""
    _need_extra()
    from ..fleet.client import cancel

    _with_client(load_flags(), lambda client: cancel(client, run_id))
    print(f"Asked run {run_id} to stop.")


def _show(console: Console, state: RunState) -> None:
    from rich.text import Text

    from .ui import one_line

    line = Text.assemble(
        (one_line(state.id).plain, "bold"),
        "  ",
        one_line(state.name),
        "  ",
        one_line(state.status, _STYLES.get(state.status, "")),
    )
    if state.status in ("running", "waiting", "stopping", "finished", "stopped"):
        line.append(f"  step {state.step}  ${state.spend:.4f}")
    if state.worker:
        line.append("  on ")
        line.append(one_line(state.worker))
    if state.request:
        line.append("  waits on ")
        line.append(one_line(f"{state.request['command']} ({state.request['id']})"))
        line.append(": `autoagent approvals`")
    if state.reason:
        line.append("  ")
        line.append(one_line(state.reason))
    console.print(line, no_wrap=True, overflow="ellipsis", crop=True)


_STYLES = {
    "finished": "bold green",
    "failed": "bold red",
    "waiting": "bold yellow",
    "stopped": "yellow",
    "cancelled": "yellow",
}
