"""What is submitted to a fleet: one agent per run, from flags, a profile or a fleet file.

A fleet file is YAML, `agents: [{name, role, goals, workspace, budget, model, max_steps}]`;
it is read whole and checked before anything is submitted, and a mistake is one sentence.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..agent.profile import AgentProfile
from ..base.errors import ConfigError, not_utf8

MAX_AGENTS = 1000


@dataclass
class Job:
    """One run as Temporal carries it: the workflow's input, the same on every attempt.
    Settings and secrets are not here: each worker takes its own from its environment."""

    run_id: str
    name: str
    role: str
    goals: list[str]
    workspace: str | None = None  # absolute; default: the worker's fleet workspaces / run id
    budget: float | None = None
    model: str | None = None
    max_steps: int | None = None
    heartbeat_timeout: float = 30.0
    attempts: int = 5


class AgentEntry(BaseModel):
    """One agent of a fleet file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    role: str
    goals: list[str]
    workspace: Path | None = None
    budget: float | None = Field(default=None, gt=0)
    model: str | None = Field(default=None, min_length=1)
    max_steps: int | None = Field(default=None, ge=1)


class FleetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: list[AgentEntry] = Field(min_length=1, max_length=MAX_AGENTS)


def new_job_id(name: str) -> str:
    """A run id that says whose run it is: the agent's name, made a folder name, and a token."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:40] or "agent"
    return f"{slug}-{secrets.token_hex(4)}"


def entry_of(**fields: Any) -> AgentEntry:
    """One agent given by flags, checked as a fleet file's are."""
    try:
        return AgentEntry(**fields)
    except ValidationError as exc:
        raise ConfigError(_first_problem(exc, "The agent")) from exc


def job_of(entry: AgentEntry, *, base: Path, heartbeat_timeout: float, attempts: int) -> Job:
    """The job for `entry`, checked as a run's profile is; a relative workspace is taken from
    `base` (the submitting folder) and must be the same path on every worker."""
    try:
        profile = AgentProfile(name=entry.name, role=entry.role, goals=entry.goals)
    except ValidationError as exc:
        raise ConfigError(_first_problem(exc, f"agent {entry.name!r}")) from exc
    workspace = None
    if entry.workspace is not None:
        workspace = str((base / entry.workspace.expanduser()).resolve())
    return Job(
        run_id=new_job_id(profile.name),
        name=profile.name,
        role=profile.role,
        goals=list(profile.goals),
        workspace=workspace,
        budget=entry.budget,
        model=entry.model,
        max_steps=entry.max_steps,
        heartbeat_timeout=heartbeat_timeout,
        attempts=attempts,
    )


def load_fleet(path: Path) -> list[AgentEntry]:
    """The agents of a fleet file; ConfigError, one sentence, for anything wrong in it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Cannot read the fleet file: {not_utf8(path, exc)}") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read the fleet file {path}: {exc.strerror}.") from exc
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"The fleet file {path} is not valid YAML{line}.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"The fleet file {path} must hold `agents:`, a list of agents.")
    try:
        return FleetFile.model_validate(data).agents
    except ValidationError as exc:
        raise ConfigError(_first_problem(exc, str(path))) from exc


def _first_problem(exc: ValidationError, where: str) -> str:
    error = exc.errors()[0]
    place: list[str] = []
    for part in error["loc"]:
        if isinstance(part, int):
            place.append(f"agent {part + 1}" if not place else f"item {part + 1}")
        elif part != "agents":
            place.append(str(part))
    at = ", ".join(place)
    if error["type"] == "extra_forbidden":
        known = ", ".join(AgentEntry.model_fields) if len(place) > 1 else "agents"
        message = f"{place[-1]!r} is not a known key (known: {known})"
        at = ", ".join(place[:-1])
    elif error["type"] == "missing":
        message = f"{place[-1]!r} is missing"
        at = ", ".join(place[:-1])
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
    return f"{where}{': ' + at if at else ''}: {message}."
