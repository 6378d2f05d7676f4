"""`autoagent memory`: see and manage the agent's long-term memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from .common import load_flags, new_console

if TYPE_CHECKING:
    from ..store.memory import Memory

memory_app = typer.Typer(
    help="See and manage the agent's long-term memory.", no_args_is_help=True, rich_markup_mode=None
)


@contextmanager
def _memory(agent: str | None, *, to_read: bool = False) -> Iterator[Memory]:
    """The named agent's memory (default: the one in ai_settings.yaml), closed after use;
    `to_read`: one that reading never writes."""
    from ..agent.parts import open_memory, open_memory_to_read
    from ..agent.profile import load_profile
    from ..base.errors import ConfigError

    settings = load_flags()
    if agent is None:
        if not settings.ai_settings.is_file():
            raise ConfigError("Name the agent with --agent (no ai_settings.yaml here).")
        agent = load_profile(settings.ai_settings).name
    memory = (open_memory_to_read if to_read else open_memory)(settings, agent)
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

    console = new_console()
    with _memory(agent, to_read=True) as memory:
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

    console = new_console()
    with _memory(agent, to_read=True) as memory:
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

    console = new_console()
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
