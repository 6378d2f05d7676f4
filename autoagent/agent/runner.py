"""Wiring: from Settings and a profile to a ready AgentLoop (new or resumed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from pydantic import ValidationError

from ..base.errors import ConfigError, JournalError, describe_validation
from ..base.settings import Settings, process_environment
from ..base.status import RunStatus
from ..human.authorize import Gate, Human
from ..human.desk import Desk, Screen
from ..human.hooks import Hooks
from ..human.notify import Notifier
from ..human.policy import Policy
from ..human.requests import Answer, Request, RequestStore
from ..model import prompts
from ..model.llm import ChatModel
from ..store.embeddings import transformer_runs_here
from ..store.journal import RunJournal, is_live
from ..store.runs import read_runs
from ..tools.commands import builtin_commands, default_registry
from ..tools.commands.base import CommandContext
from ..tools.commands.mcp import attach_servers, configured_servers
from ..tools.sandbox import build_sandbox
from ..tools.workspace import Workspace
from .agents import ModelCaller, execution_system_prompt
from .events import Event, HumanAsked
from .findings import FILE_NAME as FINDINGS_FILE
from .hooks_setup import configured_hooks
from .instructions import instruction_cap, read_instructions
from .loop import AgentLoop
from .parts import (
    build_model,
    check_budget_prices,
    close_model,
    open_memory,
    price_table,
    uses_local_model,
)
from .profile import AgentProfile
from .state import CHECKPOINT_VERSION, RunConfig, RunState, resumed_settings
from .undo import undo_steps

log = logging.getLogger(__name__)


def check_folders(settings: Settings) -> tuple[Path, Path]:
    """The workspace and the data folder, resolved; the data folder may never be inside it."""
    home = settings.home.expanduser().resolve()
    workspace = settings.workspace.expanduser().resolve()
    existing = next(folder for folder in (workspace, *workspace.parents) if folder.exists())
    if not existing.is_dir():
        raise ConfigError(
            f"The workspace {workspace} cannot be a folder: {existing} is a file. "
            "Give --workspace (AUTOAGENT_WORKSPACE) a folder; it is made if missing."
        )
    if home == workspace or home.is_relative_to(workspace):
        raise ConfigError(
            f"AUTOAGENT_HOME ({home}) is inside the workspace ({workspace}); the agent could "
            "reach its own data. Move one of them."
        )
    return home, workspace


def prepare_run(
    settings: Settings,
    human: Human | None = None,
    *,
    screen: Screen | None = None,
    profile: AgentProfile | None = None,
    resume: str | None = None,
    new_id: str | None = None,
    allow_high_risk: bool = False,
    model: ChatModel | None = None,
    start_dir: Path | None = None,
    from_step: int | None = None,
    why: str = "",
) -> AgentLoop:
    """A loop for a new run of `profile` (with the id `new_id`, if given), or for the run
    `resume` names.

    The project's instructions are the AGENTS.md files of `start_dir` (default: the current
    folder) and of the workspace root, read again on every resume.

    The human is `human`, or else a desk (desk.py) that shows requests on `screen` and
    takes the first answer from any channel.

    Everything that can be checked is checked before anything is written: a new run's folder
    appears only once the run can start. A resumed run keeps its own workspace, model,
    endpoint and memory unless the settings name others (the notes then say so). With
    `from_step`, the resumed run goes on from before that step (undo.py)."""
    home, _ = check_folders(settings)
    notes: list[str] = []
    saved_digest: str | None = None
    if resume is not None:
        journal = RunJournal.open(home, resume)
        if is_live(journal.run_dir):
            raise JournalError(f"Run {resume} is running in another process.")
        saved = read_state(journal, undoing=from_step is not None)
        settings, changed = resumed_settings(settings, saved.config)
        notes += changed
        profile = saved.profile
        saved_digest = saved.instructions_digest
    assert profile is not None
    home, workspace_root = check_folders(settings)
    if resume is not None and not workspace_root.exists():  # e.g. removed during the run
        notes.append(
            f"The workspace {workspace_root} was not there: the run goes on in an empty one."
        )
    sandbox = build_sandbox(settings, workspace_root)
    mcp = configured_servers(settings, workspace_root, sandbox)
    mcp_servers = mcp.servers
    notes += mcp.notes
    policy = Policy.load(
        settings.policy_file,
        [c.name for c in builtin_commands()],
        servers=[*(mcp_servers.servers if mcp_servers else []), *mcp.left_out],
    )
    hook_list, hook_notes = configured_hooks(settings)
    notes += hook_notes
    prices = price_table(settings)
    check_budget_prices(settings, prices)
    if settings.embeddings != "openai" and not transformer_runs_here():
        notes.append(
            "This CPU lacks AVX2 and FMA, which the local embedding model needs: memories are "
            "recalled by word vectors alone, less precisely. AUTOAGENT_EMBEDDINGS=openai uses "
            "the endpoint's embeddings instead."
        )
    if model is None:
        model, model_notes = build_model(settings)
        notes += model_notes
    if uses_local_model(settings):
        # Room for the reply within the local model's context window.
        tokens = min(settings.prompt_tokens, max(settings.local_context - 2048, 1000))
        settings = settings.model_copy(update={"prompt_tokens": tokens})
    start = (start_dir or Path.cwd()).resolve()
    instructions = read_instructions(
        [start, workspace_root], instruction_cap(settings.prompt_tokens), trusted=[start]
    )
    notes += instructions.notes()
    if resume is not None and saved_digest != instructions.digest():
        notes.append(
            "The project's AGENTS.md changed since the run last went on: the new one is used."
        )
    notes = [" | ".join(sandbox.describe()), *notes]  # shown at start, kept in the audit log
    with ExitStack() as cleanup:  # until the loop owns them, what is opened is closed on error
        cleanup.callback(close_model, model)
        registry = default_registry(settings)
        cleanup.callback(registry.close)
        # A profile that does not fit the prompt budget fails before the run.
        execution_system_prompt(
            profile,
            registry.describe(),
            settings.prompt_tokens,
            instructions=instructions.prompt_text(),
            read_only=settings.read_only,
        )
        workspace = Workspace(workspace_root, forbidden=[home])
        memory = open_memory(settings, profile.name)
        cleanup.callback(memory.close)
        journal, state = open_run(
            settings,
            home,
            profile,
            resume,
            workspace.root,
            new_id=new_id,
            undoing=from_step is not None,
        )
        state.instructions_digest = instructions.digest()
        cleanup.callback(journal.release)
        undone = None
        if from_step is not None:
            undone, undo_notes = undo_steps(journal, state, from_step, why)
            notes += undo_notes
        cleanup.callback(journal.discard)  # a new run that cannot start leaves nothing
        cleanup.callback(registry.close)  # its servers stop before their logs are removed
        if mcp_servers is not None:  # started last: nothing is left running if a check fails
            notes += attach_servers(registry, mcp_servers, journal.run_dir / "mcp")
            policy.check_tools(mcp_servers.offered())  # its rules against the real tools
        journal.publish()
        if settings.read_only:
            notes.append(
                "Read-only run: only commands that change nothing are offered (reading, listing, "
                "searching, browsing, asking you, finish); its findings and plan are written to "
                f"{journal.run_dir / FINDINGS_FILE} at the end."
            )
        if mcp_servers is not None:
            mcp_servers.log_dir = journal.run_dir / "mcp"  # the folder has its name now
        announcing: AnnouncingScreen | None = None
        if human is None:
            assert screen is not None, "prepare_run needs a human or a screen"
            announcing = AnnouncingScreen(screen)
            human = desk(settings, announcing, journal, profile.name)
        caller = ModelCaller(model, state.spend, prices, settings.budget)
        context = CommandContext(
            workspace=workspace,
            settings=settings,
            run_dir=journal.run_dir,
            sandbox=sandbox,
            ask_human=human.ask,
            ask_about_page=lambda url, question, excerpts: caller.say(
                "browse",
                prompts.render("browse_question", url=url, question=question, excerpts=excerpts),
                settings.fast_model,
            ),
        )
        hooks = None
        if hook_list:  # the user's own commands: unconfined, in the folder the run starts in
            hooks = Hooks(
                hook_list,
                cwd=Path.cwd(),
                env=process_environment(),
                home=home,
                run_id=journal.run_id,
                agent=profile.name,
            )
        gate = Gate(
            human,
            continuous=settings.continuous,
            policy=policy,
            allow_high_risk=allow_high_risk,
            wait_for_human=settings.wait_for_approval,
            hooks=hooks,
        )
        loop = AgentLoop(
            state=state,
            settings=settings,
            caller=caller,
            registry=registry,
            memory=memory,
            gate=gate,
            journal=journal,
            context=context,
            resumed=resume is not None,
            notes=notes,
            instructions=instructions.prompt_text(),
            undone=undone,
            hooks=hooks,
        )
        if announcing is not None:
            announcing.announce = loop.announce
        cleanup.pop_all()
        return loop


class AnnouncingScreen:
    """A desk's screen that also makes each request it shows an event (HumanAsked) of the
    loop, once per request, before the screen shows it."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        self.interactive = screen.interactive
        self.announce: Callable[[Event], None] | None = None
        self._announced: set[str] = set()

    def show_request(self, request: Request) -> None:
        if self.announce is not None and request.id not in self._announced:
            self._announced.add(request.id)
            self.announce(
                HumanAsked(
                    request.id,
                    request.step,
                    request.kind.value,
                    request.command,
                    request.args,
                    request.risk.value,
                    request.note,
                    request.expires,
                )
            )
        self.screen.show_request(request)

    def read(self, seconds: float) -> str | None:
        return self.screen.read(seconds)

    def show_answer(self, request: Request, answer: Answer) -> None:
        self.screen.show_answer(request, answer)

    def note(self, text: str) -> None:
        self.screen.note(text)


def desk(settings: Settings, screen: Screen, journal: RunJournal, agent: str) -> Desk:
    """The run's human: requests answered from the terminal or any other channel."""
    notify = None
    if settings.notify_url:
        log_file = journal.run_dir / "notify.log"
        notify = Notifier(settings.notify_url, settings.console_url, log_file)
    return Desk(
        RequestStore(journal.run_dir),
        screen,
        run_id=journal.run_id,
        agent=agent,
        # In a continuous run, nobody is expected at the keyboard: questions need a human
        # who answers from elsewhere.
        can_answer=not settings.continuous or settings.wait_for_approval,
        timeout=settings.approval_timeout,
        notify=notify,
    )


def open_run(
    settings: Settings,
    home: Path,
    profile: AgentProfile,
    resume: str | None,
    workspace: Path,
    *,
    new_id: str | None = None,
    undoing: bool = False,
) -> tuple[RunJournal, RunState]:
    """The run's journal, locked, and its state: new (saved, and named by `publish` once the
    run can start), or loaded."""
    if resume is None:
        journal = RunJournal.create(home, new_id)
        try:
            config = RunConfig.of(settings, workspace)
            state = RunState.new(journal.run_id, profile, config, settings.stall_steps)
            journal.save_checkpoint(state.model_dump(mode="json"))  # published once it starts
        except BaseException:
            journal.discard()
            raise
        return journal, state
    journal = RunJournal.open(home, resume)
    journal.acquire()
    try:
        state = read_state(journal, undoing=undoing)  # again, now that no one can change it
    except BaseException:
        journal.release()
        raise
    state.detector.stall_steps = settings.stall_steps
    return journal, state


def read_state(journal: RunJournal, *, undoing: bool = False) -> RunState:
    """A run's state from its checkpoint, for resuming it; a clear error when it cannot be
    (a finished run goes on only when steps are undone)."""
    run_id = journal.run_id
    checkpoint = journal.load_checkpoint()
    version = checkpoint.get("version")
    if version != CHECKPOINT_VERSION:
        raise JournalError(
            f"Run {run_id} was saved by another version of autoagent (checkpoint version "
            f"{version}, this one reads {CHECKPOINT_VERSION}), so it cannot be resumed; start a "
            "new run. Its files and event log are left as they are."
        )
    try:
        state = RunState.model_validate(checkpoint)
    except ValidationError as exc:
        raise JournalError(
            f"The checkpoint of run {run_id} is damaged ({describe_validation(exc)}); "
            "it was left as it is."
        ) from exc
    if state.status is RunStatus.FINISHED and not undoing:
        raise JournalError(f"Run {run_id} has finished; start a new run instead.")
    return state


def latest_unfinished(home: Path) -> tuple[str, list[str]]:
    """The newest unfinished run, and what is wrong with newer runs that cannot be read."""
    skipped: list[str] = []
    for run in read_runs(home):
        if not run.readable:
            skipped.append(run.problem)
        elif run.status is not None and run.status.resumable:
            return run.run_id, skipped
    raise JournalError(
        " ".join(
            [*skipped, f"No unfinished run in {home / 'runs'}: start one with `autoagent run`."]
        )
    )
