"""The command line: flags -> Settings -> wiring -> rendering.

Heavy imports stay inside the commands, so `autoagent --help` is fast.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ..base.status import StopCause
from . import answers

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from ..agent.profile import AgentProfile
    from ..base.settings import Settings
    from ..store.memory import Memory

app = typer.Typer(
    help="autoagent: an autonomous, goal-driven agent for the terminal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help in click's plain format: rich's help formatting imports most of rich and markdown,
    # which doubled the time `autoagent --help` takes.
    rich_markup_mode=None,
)
memory_app = typer.Typer(
    help="See and manage the agent's long-term memory.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(memory_app, name="memory")
mcp_app = typer.Typer(
    help="See the MCP servers the agent may use.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(mcp_app, name="mcp")

# Flags shared by `run` and `resume`.
Continuous = Annotated[bool, typer.Option("--continuous", "-c", help="Never ask before a command.")]
ContinuousLimit = Annotated[
    int | None,
    typer.Option("--continuous-limit", "-l", min=1, help="Continuous for N commands, then stop."),
]
MaxSteps = Annotated[int | None, typer.Option("--max-steps", min=1, help="Hard cap on steps.")]
Debug = Annotated[bool, typer.Option("--debug", help="Log every prompt and reply to a file.")]
SkipReprompt = Annotated[
    bool, typer.Option("--skip-reprompt", "-y", help="Use ai_settings.yaml without asking.")
]
Workspace = Annotated[
    Path | None, typer.Option("--workspace", help="The only folder file commands may touch.")
]
Model = Annotated[str | None, typer.Option("--model", help="Model of the execution agent.")]
FastModel = Annotated[
    str | None, typer.Option("--fast-model", help="Model for task creation and prioritization.")
]
Budget = Annotated[
    float | None,
    typer.Option("--budget", min=0.0, help="Stop when this many US dollars are spent."),
]
Llm = Annotated[
    str | None,
    typer.Option("--llm", help="openai (an API endpoint), local (a GGUF file) or auto."),
]
ModelPath = Annotated[
    Path | None, typer.Option("--model-path", help="A GGUF model file to run on this machine.")
]
MemoryUrl = Annotated[
    str | None,
    typer.Option("--memory-url", help="Keep memory on a Chroma server, e.g. http://host:8000."),
]
McpConfig = Annotated[
    Path | None,
    typer.Option("--mcp-config", help="MCP servers to use (default: .mcp.json here, if approved)."),
]
AllowHighRisk = Annotated[
    bool,
    typer.Option(
        "--allow-high-risk",
        help="In continuous mode, also run high-risk commands (delete, execute) without asking.",
    ),
]

AllowNetwork = Annotated[
    bool,
    typer.Option("--allow-network", help="Let the programs the agent runs use the network."),
]
WaitForApproval = Annotated[
    bool,
    typer.Option(
        "--wait-for-approval",
        help="In continuous mode, hold what needs a human until someone answers from another "
        "shell or the web console, instead of refusing it.",
    ),
]
ApprovalTimeout = Annotated[
    float | None,
    typer.Option(
        "--approval-timeout",
        min=1.0,
        help="Deny a request no one answered within this many seconds.",
    ),
]
Notify = Annotated[
    str | None,
    typer.Option("--notify", help="POST each request for a human to this URL (a webhook)."),
]
NoSandbox = Annotated[
    bool,
    typer.Option(
        "--no-sandbox",
        help="Run programs unconfined, with everything your user can reach (said at each one).",
    ),
]


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _fail(console: Console, error: Exception) -> None:
    from .ui import labelled, outside

    console.print(labelled("Error: ", "bold red", outside(error)))
    sys.exit(1)


def _settings(**flags: Any) -> Settings:
    from ..base.settings import load_settings

    return load_settings(flags)


class _ScreenFormatter(logging.Formatter):
    """Log lines for the terminal: what they quote from outside cannot drive it."""

    def format(self, record: logging.LogRecord) -> str:
        from ..base.text import strip_terminal_escapes

        return strip_terminal_escapes(super().format(record))


def _configure_logging(settings: Settings) -> None:
    """Warnings to the terminal; with --debug, everything to the run's debug.log as well
    (`_log_to_file`, once the run has a folder). Done once per process. Every record, also a
    library's, is rid of the secrets it may quote (redact.py) before either sees it."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if settings.debug else logging.WARNING)
    for noisy in ("httpx", "httpcore", "openai", "chromadb", "urllib3", "primp"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not settings.debug else logging.INFO)
    if any(handler.get_name() == "autoagent-screen" for handler in root.handlers):
        return
    screen = logging.StreamHandler(sys.stderr)
    screen.set_name("autoagent-screen")
    screen.setLevel(logging.WARNING)
    screen.setFormatter(_ScreenFormatter("%(levelname)s %(name)s: %(message)s"))
    screen.addFilter(_redacting(settings))
    root.addHandler(screen)


def _redacting(settings: Settings) -> logging.Filter:
    from ..base.redact import RedactingFilter

    # The webhook's whole path may be its secret (an ntfy topic).
    return RedactingFilter([settings.notify_url] if settings.notify_url else [])


def _log_to_file(log_file: Path, settings: Settings) -> None:
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_redacting(settings))
    logging.getLogger().addHandler(handler)


def _ask_profile(console: Console) -> AgentProfile:
    from ..agent.profile import MAX_GOALS, make_profile

    console.print("Create an agent: give it a name, a role and up to five goals.")
    name = ""
    while not name:
        name = console.input("Name: ").strip()
    role = ""
    while not role:
        role = console.input("Role (what it is for): ").strip()
    console.print(f"Goals, one per line; an empty line ends (at most {MAX_GOALS}).")
    goals: list[str] = []
    while len(goals) < MAX_GOALS:
        goal = console.input(f"Goal {len(goals) + 1}: ").strip()
        if not goal:
            if goals:
                break
            console.print("At least one goal is needed.")
            continue
        goals.append(goal)
    return make_profile(name, role, goals)


def _resolve_profile(
    console: Console,
    settings: Settings,
    name: str | None,
    role: str | None,
    goals: list[str] | None,
) -> AgentProfile:
    from rich.text import Text

    from ..agent.profile import load_profile, make_profile, save_profile
    from .ui import one_line

    if name or role or goals:
        if not (name and role and goals):
            raise typer.BadParameter("--name, --role and --goal are needed together.")
        return make_profile(name, role, goals)
    path = settings.ai_settings
    if path.is_file():
        profile = load_profile(path)
        console.print(Text(f"Agent profile from {one_line(path).plain}:", "bold"))
        console.print(Text.assemble("  Name: ", one_line(profile.name)))
        console.print(Text.assemble("  Role: ", one_line(profile.role)))
        for number, goal in enumerate(profile.goals, 1):
            console.print(Text.assemble(f"  Goal {number}: ", one_line(goal)))
        if settings.skip_reprompt:
            return profile
        answer = console.input(Text("Continue with this profile? [Y/n] ")).strip().lower()
        if answer in {"", "y", "yes"}:
            return profile
    profile = _ask_profile(console)
    save_profile(profile, path)
    console.print(Text.assemble("Saved the profile to ", one_line(path), "."))
    return profile


def _drive(console: Console, settings: Settings, **prepare: Any) -> None:
    """Run a loop to its end, rendering every event; exit 1 when the run failed."""
    from rich.text import Text

    from ..agent.events import RunEnded
    from ..agent.runner import prepare_run
    from .screen import TerminalScreen
    from .ui import Renderer, one_line

    # A continuous run has nobody at the keyboard: requests are answered from elsewhere.
    screen = TerminalScreen(console, interactive=not settings.continuous)
    renderer = Renderer(console)
    if not settings.continuous:
        _ask_about_project_servers(console, settings)
    with console.status("Starting..."):
        loop = prepare_run(settings, screen=screen, **prepare)
    ended: RunEnded | None = None
    with loop:
        screen.spill_dir = loop.run_dir / "proposals"
        loop.on_progress(renderer.progress)
        if settings.debug:
            log_file = loop.run_dir / "debug.log"
            _log_to_file(log_file, settings)
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
        try:
            for event in loop.run():
                renderer.show(event)
                if isinstance(event, RunEnded):
                    ended = event
        except KeyboardInterrupt:
            # A second Ctrl-C while the first one's clean-up runs: leave at once. The checkpoint
            # is replaced atomically, so the run on disk is the last consistent one.
            renderer.close()
            console.print(Text("\nStopped at once. `autoagent resume` continues the run."))
            _leave_now(130)
        finally:
            renderer.close()
    # The run is saved, its memory written and closed, its servers stopped.
    _leave_now(exit_code(ended.cause if ended else StopCause.ERROR))


def exit_code(cause: StopCause | None) -> int:
    """The exit status of a run that ended so: 1 when it failed, 130 when interrupted."""
    match cause:
        case StopCause.ERROR | None:
            return 1
        case StopCause.INTERRUPTED:
            return 130
        case _:
            return 0


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
) -> None:
    """Start the agent on its goals."""
    settings = _run_settings(locals())
    console = _console()
    try:
        profile = _resolve_profile(console, settings, name, role, goal)
    except (KeyboardInterrupt, EOFError):
        console.print("\nNothing started.")
        raise typer.Exit(1) from None
    _drive(console, settings, profile=profile, allow_high_risk=allow_high_risk)


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
) -> None:
    """Continue an unfinished run from its last completed step."""
    settings = _run_settings(locals())
    from ..agent.runner import latest_unfinished

    console = _console()
    if run_id is None:
        from .ui import labelled, outside

        run_id, skipped = latest_unfinished(settings.home)
        for problem in skipped:
            console.print(labelled("Skipped: ", "bold yellow", outside(problem)))
    _drive(console, settings, resume=run_id, allow_high_risk=allow_high_risk)


# The flags `run` and `resume` share, each a parameter named as the setting it sets.
RUN_FLAGS = (
    "ai_settings",
    "max_steps",
    "debug",
    "skip_reprompt",
    "workspace",
    "model",
    "fast_model",
    "budget",
    "llm",
    "model_path",
    "memory_url",
    "allow_network",
    "mcp_config",
    "wait_for_approval",
    "approval_timeout",
    "notify_url",
)


def _run_settings(flags: dict[str, Any]) -> Settings:
    """Settings for `run` and `resume` from their flags (their parameters, given as they are);
    a flag left off (False, None) defers to the environment, .env and the defaults."""
    continuous_limit = flags["continuous_limit"]
    settings = _settings(
        continuous=flags["continuous"] or (continuous_limit is not None) or None,
        continuous_limit=continuous_limit,
        sandbox="none" if flags["no_sandbox"] else None,
        **{
            name: None if flags[name] is False else flags[name]
            for name in RUN_FLAGS
            if name in flags
        },
    )
    _configure_logging(settings)
    return settings


@app.command()
def runs() -> None:
    """List runs: name, status, steps, cost and start time."""
    import time

    from rich.table import Table
    from rich.text import Text

    from ..store.runs import read_runs
    from .ui import one_line, outside

    console = _console()
    settings = _settings()
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


@app.command()
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

    journal = RunJournal.open(_settings().home, run_id)
    if html is not None:
        _write_html(journal, html)
        return
    state, problem = None, ""
    try:
        state = journal.load_checkpoint()
    except JournalError as exc:
        problem = str(exc)
    entries = journal.events()
    if not entries:
        raise JournalError(problem or f"Run {run_id} has no events.jsonl to show.")
    render_run(_console(), run_id, entries, state, problem)


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
    _console().print(Text.assemble("Wrote ", one_line(target), "."))


@app.command()
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

    settings = _settings()
    _configure_logging(settings)
    if port is None:  # where the links in notifications point
        port = urlsplit(settings.console_url).port or 8765
    server = ConsoleServer(settings.home, host, port)
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


@app.command()
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

    console = _console()
    settings = _settings(allow_network=allow_network or None, workspace=workspace)
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


@contextmanager
def _memory(agent: str | None) -> Iterator[Memory]:
    """The named agent's memory (default: the one in ai_settings.yaml), closed after use."""
    from ..agent.profile import load_profile
    from ..agent.runner import open_memory
    from ..base.errors import ConfigError

    settings = _settings()
    if agent is None:
        if not settings.ai_settings.is_file():
            raise ConfigError("Name the agent with --agent (no ai_settings.yaml here).")
        agent = load_profile(settings.ai_settings).name
    memory = open_memory(settings, agent)
    try:
        yield memory
    finally:
        memory.close()


AgentOption = Annotated[
    str | None, typer.Option("--agent", help="Agent name (default: the one in ai_settings.yaml).")
]


@memory_app.command("search")
def memory_search(
    query: str,
    agent: AgentOption = None,
    count: Annotated[int, typer.Option("-k", min=1, help="How many.")] = 5,
) -> None:
    """Show the memories nearest in meaning to QUERY."""
    from rich.text import Text

    from .ui import Quoted, outside

    console = _console()
    with _memory(agent) as memory:
        found = memory.recall(query, count)
    for item in found:
        console.print(Text(f"{item.distance:.3f}", "bold"))
        console.print(Quoted([outside(item.text)]))
        console.print()
    if not found:
        console.print(Text("No memories yet."))


@memory_app.command("list")
def memory_list(
    agent: AgentOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many.")] = 20,
) -> None:
    """Show the most recent memories."""
    from rich.text import Text

    from .ui import Quoted, one_line, outside

    console = _console()
    with _memory(agent) as memory:
        items = memory.list(limit)
        total = memory.count()
    for item in items:
        meta = item.metadata
        where = f"run {meta.get('run_id', '?')} step {meta.get('step', '?')}"
        console.print(one_line(where, "dim"))
        console.print(Quoted([outside(item.text)]))
        console.print()
    console.print(Text.assemble(f"{total} memories of ", one_line(memory.agent_name), "."))


@memory_app.command("clear")
def memory_clear(
    agent: AgentOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask first.")] = False,
) -> None:
    """Forget every memory of the agent (asks first)."""
    from rich.text import Text

    from .screen import drop_typed_ahead
    from .ui import one_line

    console = _console()
    with _memory(agent) as memory:
        total = memory.count()
        if not yes:
            drop_typed_ahead()
            answer = console.input(
                Text.assemble(
                    f"Forget all {total} memories of ", one_line(memory.agent_name), "? [y/N] "
                )
            )
            if answer.strip().lower() not in {"y", "yes"}:
                console.print(Text("Nothing was deleted."))
                return
        memory.clear()
    console.print(Text(f"Forgot {total} memories."))


@mcp_app.command("list")
def mcp_list(mcp_config: McpConfig = None, workspace: Workspace = None) -> None:
    """Start each configured MCP server, list its tools with their risk, and stop it.

    Exits with 1 when a server does not start."""
    import tempfile

    from ..agent.runner import check_folders
    from ..tools.commands.mcp import configured_servers
    from ..tools.sandbox import build_sandbox
    from .ui import outside

    console = _console()
    settings = _settings(mcp_config=mcp_config, workspace=workspace)
    _, workspace_root = check_folders(settings)
    _ask_about_project_servers(console, settings, again=True)
    mcp = configured_servers(settings, workspace_root, build_sandbox(settings, workspace_root))
    for note in mcp.notes:
        console.print(outside(note))
    servers = mcp.servers
    if servers is None:
        if not mcp.notes:
            console.print(
                "No MCP servers: give a config with --mcp-config or AUTOAGENT_MCP_CONFIG, "
                "or put a .mcp.json here."
            )
        return
    with tempfile.TemporaryDirectory() as logs:
        try:
            with console.status("Starting the MCP servers..."):
                servers.start(Path(logs))
            lines = [line for s in servers.servers.values() for line in _mcp_lines(s, servers)]
        finally:
            servers.close()
    for line in lines:
        console.print(line)
    if any(state.status == "failed" for state in servers.servers.values()):
        raise typer.Exit(1)


def _ask_about_project_servers(console: Console, settings: Settings, **how: bool) -> None:
    """Ask before a project's own .mcp.json is first used; Ctrl-C there starts nothing."""
    from .project_mcp import ask_about_project_servers

    try:
        ask_about_project_servers(console, settings, **how)
    except KeyboardInterrupt:
        console.print("\nNothing started.")
        raise typer.Exit(1) from None


def _mcp_lines(state: Any, servers: Any) -> list[Text]:
    """A server of `mcp list`: where it is, whether it started, its tools and their risk."""
    from rich.text import Text

    from ..tools.commands.mcp import tool_commands, tools
    from .ui import RISK_STYLES, one_line, outside

    config = state.config
    where = one_line(config.url or " ".join([config.command, *config.args]))
    if state.status == "failed":
        name = one_line(state.name, "bold red")
        return [Text.assemble(name, " (", where, "): did not start: ", outside(state.reason))]
    commands, skipped = tool_commands(state, servers)
    name = one_line(state.name, "bold green")
    lines = [Text.assemble(name, " (", where, f"): started, {tools(len(commands))}")]
    for cmd in commands:
        risk = (cmd.risk.value, RISK_STYLES[cmd.risk])
        lines.append(
            Text.assemble("  ", one_line(cmd.name), " (", risk, "): ", outside(cmd.description))
        )
    lines.extend(
        Text.assemble("  ", one_line(s.command), " left out: ", outside(s.reason)) for s in skipped
    )
    return lines


app.command("approvals")(answers.approvals)
app.command("approve")(answers.approve)
app.command("deny")(answers.deny)
app.command("answer")(answers.answer)


def main() -> None:
    """The entry point: every error the harness raises on purpose is shown once, plainly."""
    from ..base.errors import AutoAgentError

    try:
        app()
    except AutoAgentError as exc:
        _fail(_console(), exc)
