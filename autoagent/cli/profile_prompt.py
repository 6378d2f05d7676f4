"""The agent's profile at the start of a run: from the flags, from ai_settings.yaml, or asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from ..agent.profile import AgentProfile
    from ..base.settings import Settings


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


def resolve_profile(
    console: Console,
    settings: Settings,
    name: str | None,
    role: str | None,
    goals: list[str] | None,
    *,
    can_ask: bool = True,
) -> AgentProfile:
    """The profile the flags give, or the profile file's (asked to confirm unless -y), or one
    asked for. When nobody `can_ask` (`--output json` with no terminal), the file's is taken as
    it is, and a run with neither ends before it starts (exit 2)."""
    from rich.text import Text

    from ..agent.profile import load_profile, make_profile, profile_file_exists, save_profile
    from .ui import one_line

    if name or role or goals:
        if not (name and role and goals):
            raise typer.BadParameter("--name, --role and --goal are needed together.")
        return make_profile(name, role, goals)
    path = settings.ai_settings
    if profile_file_exists(path):
        profile = load_profile(path)
        console.print(Text(f"Agent profile from {one_line(path).plain}:", "bold"))
        console.print(Text.assemble("  Name: ", one_line(profile.name)))
        console.print(Text.assemble("  Role: ", one_line(profile.role)))
        for number, goal in enumerate(profile.goals, 1):
            console.print(Text.assemble(f"  Goal {number}: ", one_line(goal)))
        if settings.skip_reprompt or not can_ask:
            return profile
        answer = console.input(Text("Continue with this profile? [Y/n] ")).strip().lower()
        if answer in {"", "y", "yes"}:
            return profile
    if not can_ask:
        console.print(
            Text.assemble(
                "No agent profile: give --name, --role and --goal, or a profile file (",
                one_line(path),
                " or --ai-settings); with no terminal, nobody can be asked for one.",
            )
        )
        raise typer.Exit(2)
    profile = _ask_profile(console)
    save_profile(profile, path)
    console.print(Text.assemble("Saved the profile to ", one_line(path), "."))
    return profile
