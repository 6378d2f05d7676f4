"""The command line: flags -> Settings -> wiring -> rendering.

Heavy imports stay inside the commands, so `autoagent --help` is fast.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO, assert_never

import typer

from ..base.errors import JournalError
from ..base.status import StopCause
from . import answers, fleet, inspect, mcp, memory, rewind
from .common import fail, load_flags, new_console
from .logs import configure_logging, log_to_file
from .mcp import ask_about_project_servers
from .options import (
    RUN_FLAGS,
    AllowHighRisk,
    AllowNetwork,
    ApprovalTimeout,
    Budget,
    Continuous,
    ContinuousLimit,
    Debug,
    FastModel,
    Llm,
    MaxSteps,
    McpConfig,
    MemoryUrl,
    Model,
    ModelPath,
    NoSandbox,
    Notify,
    Output,
    OutputFormat,
    ReadOnly,
    SkipReprompt,
    WaitForApproval,
    Workspace,
)
from .profile_prompt import resolve_profile

if TYPE_CHECKING:
    from rich.console import Console

    from ..base.settings import Settings

app = typer.Typer(
    help="autoagent: an autonomous, goal-driven agent for the terminal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help in click's plain format: rich's help formatting imports most of rich and markdown,
    # which doubled the time `autoagent --help` takes.
    rich_markup_mode=None,
)
app.add_typer(memory.memory_app, name="memory")
app.add_typer(mcp.mcp_app, name="mcp")
app.add_typer(fleet.fleet_app, name="fleet")
schema_app = typer.Typer(
    help="The JSON Schemas of what autoagent writes for programs.", no_args_is_help=True
)
app.add_typer(schema_app, name="schema")


def _drive(
    console: Console, settings: Settings, stream: TextIO | None = None, **prepare: Any
) -> None:
    """Run a loop to its end, rendering every event (as JSON lines on `stream`, if given);
    exit with the code of the kind of stop (`exit_code`)."""
    from rich.text import Text

    from ..agent.events import Event, RunEnded
    from ..agent.runner import prepare_run
    from .interrupts import CtrlC
    from .screen import TerminalScreen
    from .stream import EventStream, summary
    from .telemetry import EXIT_WAIT, start_traces
    from .ui import Renderer, labelled, one_line, outside

    # A continuous run has nobody at the keyboard: requests are answered from elsewhere.
    screen = TerminalScreen(console, interactive=not settings.continuous)
    if not settings.continuous:
        ask_about_project_servers(console, settings)
        _ask_about_project_hooks(console, settings)
    with console.status("Starting..."):
        loop = prepare_run(settings, screen=screen, **prepare)
    ended: RunEnded | None = None
    renderer: Renderer | EventStream
    if stream is None:
        renderer = Renderer(console)
        loop.on_progress(renderer.progress)
    else:
        renderer = EventStream(stream, loop.state.run_id, lambda: loop.state.step)
    loop.on_event(renderer.show)  # a request for a human, while the loop waits for its answer
    with loop:
        traces, note = start_traces(loop)  # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set
        loop.notes += [note] if note else []
        screen.spill_dir = loop.run_dir / "proposals"
        if settings.debug:
            log_file = loop.run_dir / "debug.log"
            log_to_file(log_file, settings)
            console.print(Text.assemble("Debug log: ", one_line(log_file)))
        if settings.continuous:
            if prepare.get("allow_high_risk"):
                rest = "."
            elif settings.wait_for_approval:
                rest = "; high-risk ones wait for a human's answer from elsewhere."
            else:
                rest = "; high-risk ones are refused."
            console.print(
                Text.assemble(
                    ("Continuous mode:", "bold yellow"), " commands run without asking", rest
                )
            )

        def show(event: Event) -> None:
            if traces is not None:
                traces.see(event)  # before it is shown, as it happened
            renderer.show(event)

        try:
            with CtrlC(loop) as ctrl_c:
                ended = ctrl_c.consume(loop.run(), show)
        except KeyboardInterrupt:
            # A second Ctrl-C while the first one's clean-up runs: leave at once. The checkpoint
            # is replaced atomically, so the run on disk is the last consistent one.
            renderer.close()
            console.print(Text("\nStopped at once. `autoagent resume` continues the run."))
            _leave_now(130)
        finally:
            renderer.close()
    # The run is saved, its memory written and closed, its servers stopped.
    if traces is not None and (problem := traces.close(EXIT_WAIT)):
        console.print(labelled("NOTE: ", "bold yellow", outside(problem)))
    code = exit_code(ended.cause if ended else StopCause.ERROR)
    if stream is not None:
        console.print(Text(summary(ended, code)), soft_wrap=True)
    _leave_now(code)


# Exit 2 is the command line's: a flag typer refuses, or a profile nobody can be asked for.
USAGE_EXIT = 2


def _ask_about_project_hooks(console: Console, settings: Settings) -> None:
    """Ask before a project's own hooks file is first used; Ctrl-C there starts nothing."""
    from .project_hooks import ask_about_project_hooks

    try:
        ask_about_project_hooks(console, settings)
    except KeyboardInterrupt:
        console.print("\nNothing started.")
        raise typer.Exit(1) from None


def exit_code(cause: StopCause | None) -> int:
    """The exit status of a run that ended so, one for each kind of stop (README: Exit codes)."""
    match cause:
        case StopCause.FINISHED:
            return 0
        case StopCause.ERROR | None:
            return 1
        case StopCause.MAX_STEPS:
            return 3
        case StopCause.CONTINUOUS_LIMIT:
            return 4
        case StopCause.BUDGET:
            return 5
        case StopCause.LOOPING:
            return 6
        case StopCause.HUMAN:
            return 7
        case StopCause.INPUT_ENDED:
            return 8
        case StopCause.WORKSPACE_GONE:
            return 9
        case StopCause.INTERRUPTED:
            return 130
        case _:
            assert_never(cause)


def _output(output: OutputFormat) -> TextIO | None:
    """With `--output json`, stdout holds the JSON lines alone (stream.py) from here on."""
    if output is OutputFormat.TEXT:
        return None
    from .stream import claim_stdout

    return claim_stdout()


def _nobody_to_ask(settings: Settings, stream: TextIO | None) -> Settings:
    """With `--output json` and no terminal on stdin, nobody can be asked: the run is
    continuous, and what needs a human is refused (or held, with --wait-for-approval)."""
    if stream is None or sys.stdin.isatty():
        return settings
    return settings.model_copy(update={"continuous": True})


def _leave_now(code: int) -> NoReturn:
    """Exit without tearing the interpreter down, which takes a second or more once chromadb
    and the embedding models are loaded: once a run is saved and its memory closed (also after
    Ctrl-C), the terminal should be back at once."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def run(
    name: Annotated[str | None, typer.Option("--name", help="The agent's name.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="The agent's role.")] = None,
    goal: Annotated[
        list[str] | None, typer.Option("--goal", help="A goal (repeat, at most 5).")
    ] = None,
    ai_settings: Annotated[
        Path | None, typer.Option("--ai-settings", help="Profile file (default ai_settings.yaml).")
    ] = None,
    continuous: Continuous = False,
    continuous_limit: ContinuousLimit = None,
    max_steps: MaxSteps = None,
    debug: Debug = False,
    skip_reprompt: SkipReprompt = False,
    workspace: Workspace = None,
    model: Model = None,
    fast_model: FastModel = None,
    budget: Budget = None,
    llm: Llm = None,
    model_path: ModelPath = None,
    memory_url: MemoryUrl = None,
    mcp_config: McpConfig = None,
    allow_high_risk: AllowHighRisk = False,
    allow_network: AllowNetwork = False,
    no_sandbox: NoSandbox = False,
    wait_for_approval: WaitForApproval = False,
    approval_timeout: ApprovalTimeout = None,
    notify_url: Notify = None,
    output: Output = OutputFormat.TEXT,
    read_only: ReadOnly = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            help="Give the new run this id (letters, digits, - and _), e.g. from a script.",
        ),
    ] = None,
) -> None:
    """Start the agent on its goals."""
    if run_id is not None:
        from ..store.journal import check_run_id

        try:
            check_run_id(run_id)
        except JournalError as exc:
            raise typer.BadParameter(str(exc), param_hint="--run-id") from None
    stream = _output(output)
    settings = _nobody_to_ask(_run_settings(locals()), stream)
    console = new_console(stderr=stream is not None)
    try:
        can_ask = stream is None or sys.stdin.isatty()
        profile = resolve_profile(console, settings, name, role, goal, can_ask=can_ask)
    except (KeyboardInterrupt, EOFError):
        console.print("\nNothing started.")
        raise typer.Exit(1) from None
    _drive(
        console,
        settings,
        stream,
        profile=profile,
        new_id=run_id,
        allow_high_risk=allow_high_risk,
    )


@app.command()
def resume(
    run_id: Annotated[
        str | None, typer.Argument(help="The run to resume (default: latest).")
    ] = None,
    continuous: Continuous = False,
    continuous_limit: ContinuousLimit = None,
    max_steps: MaxSteps = None,
    debug: Debug = False,
    skip_reprompt: SkipReprompt = False,
    workspace: Workspace = None,
    model: Model = None,
    fast_model: FastModel = None,
    budget: Budget = None,
    llm: Llm = None,
    model_path: ModelPath = None,
    memory_url: MemoryUrl = None,
    mcp_config: McpConfig = None,
    allow_high_risk: AllowHighRisk = False,
    allow_network: AllowNetwork = False,
    no_sandbox: NoSandbox = False,
    wait_for_approval: WaitForApproval = False,
    approval_timeout: ApprovalTimeout = None,
    notify_url: Notify = None,
    output: Output = OutputFormat.TEXT,
    read_only: ReadOnly = None,
    from_step: Annotated[
        int | None,
        typer.Option(
            "--from-step",
            min=1,
            help="Go on from before this step: it and the later ones are undone (see rewind).",
        ),
    ] = None,
    why: Annotated[
        str, typer.Option("--why", help="With --from-step: why, in words the agent is told.")
    ] = "",
) -> None:
    """Continue an unfinished run from its last completed step (or from before a step)."""
    if why and from_step is None:
        raise typer.BadParameter("--why goes with --from-step: it says why those steps are undone.")
    stream = _output(output)
    settings = _nobody_to_ask(_run_settings(locals()), stream)
    from ..agent.runner import latest_unfinished

    console = new_console(stderr=stream is not None)
    if run_id is None:
        from .ui import labelled, outside

        run_id, skipped = latest_unfinished(settings.home)
        for problem in skipped:
            console.print(labelled("Skipped: ", "bold yellow", outside(problem)))
    _drive(
        console,
        settings,
        stream,
        resume=run_id,
        allow_high_risk=allow_high_risk,
        from_step=from_step,
        why=why,
    )


def _run_settings(flags: dict[str, Any]) -> Settings:
    """Settings for `run` and `resume` from their flags (their parameters, given as they are);
    a flag left off (False, None) defers to the environment, .env and the defaults."""
    continuous_limit = flags["continuous_limit"]
    settings = load_flags(
        continuous=flags["continuous"] or (continuous_limit is not None) or None,
        continuous_limit=continuous_limit,
        sandbox="none" if flags["no_sandbox"] else None,
        read_only=flags["read_only"],  # None: not given; False (--no-read-only) is given
        **{
            name: None if flags[name] is False else flags[name]
            for name in RUN_FLAGS
            if name in flags
        },
    )
    configure_logging(settings)
    return settings


@schema_app.command("events")
def schema_events() -> None:
    """The JSON Schema of each line `run --output json` and `resume --output json` write."""
    import json

    from .stream import events_schema

    sys.stdout.write(json.dumps(events_schema(), indent=1) + "\n")


for command in (inspect.runs, inspect.show, inspect.serve, inspect.sandbox):
    app.command()(command)
app.command("approvals")(answers.approvals)
app.command("approve")(answers.approve)
app.command("deny")(answers.deny)
app.command("answer")(answers.answer)
app.command("diff")(rewind.diff)
app.command("rewind")(rewind.rewind)


def main() -> None:
    """The entry point: every error the harness raises on purpose is shown once, plainly."""
    from ..base.errors import AutoAgentError

    try:
        app()
    except AutoAgentError as exc:
        fail(new_console(), exc)
