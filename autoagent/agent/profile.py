"""The agent's profile: a name, a role and up to five goals, kept in ai_settings.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..base.errors import ConfigError, describe_validation, not_utf8

MAX_GOALS = 5
MAX_GOAL_CHARS = 1000  # with the role, they are in every prompt: details belong in a file


class AgentProfile(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=100)
    role: str = Field(min_length=1, max_length=2000)
    goals: list[str] = Field(min_length=1, max_length=MAX_GOALS)

    @field_validator("name", "role")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("goals")
    @classmethod
    def _clean_goals(cls, goals: list[str]) -> list[str]:
        cleaned = [g.strip() for g in goals if g and g.strip()]
        if not cleaned:
            raise ValueError("at least one goal is needed")
        for number, goal in enumerate(cleaned, 1):
            if len(goal) > MAX_GOAL_CHARS:
                raise ValueError(
                    f"goal {number} has {len(goal)} characters, more than {MAX_GOAL_CHARS}; "
                    "put the details in a file in the workspace and name it in the goal"
                )
        return cleaned


def make_profile(name: str, role: str, goals: list[str]) -> AgentProfile:
    try:
        return AgentProfile(name=name, role=role, goals=goals)
    except ValidationError as exc:
        raise ConfigError(f"Invalid agent profile: {describe_validation(exc)}.") from exc


def profile_file_exists(path: Path) -> bool:
    """Whether a profile file is there to load; ConfigError when something else has its name
    (a folder is not a missing profile, to be asked for and then not saved)."""
    if not path.exists():
        return False
    if path.is_dir():
        raise ConfigError(
            f"The agent profile {path} is a folder, not a file: remove or rename it, or name "
            "another file with --ai-settings."
        )
    if not path.is_file():
        raise ConfigError(f"The agent profile {path} is not a regular file.")
    return True


def load_profile(path: Path) -> AgentProfile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Cannot read the agent profile: {not_utf8(path, exc)}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read the agent profile {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold ai_name, ai_role and ai_goals.")
    try:
        return AgentProfile(
            name=data.get("ai_name", ""),
            role=data.get("ai_role", ""),
            goals=data.get("ai_goals") or [],
        )
    except ValidationError as exc:
        problems = describe_validation(exc, lambda field: f"ai_{field}")
        raise ConfigError(f"Invalid agent profile in {path}: {problems}.") from exc


def save_profile(profile: AgentProfile, path: Path) -> None:
    data = {"ai_name": profile.name, "ai_role": profile.role, "ai_goals": list(profile.goals)}
    try:
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot save the agent profile to {path}: {exc}") from exc
