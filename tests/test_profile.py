from pathlib import Path

import pytest

from autoagent.agent.profile import load_profile, make_profile, save_profile
from autoagent.base.errors import ConfigError


def test_profile_round_trips_through_yaml(tmp_path: Path) -> None:
    profile = make_profile("Researcher", "finds facts", ["Find X", "Write a summary to summary.md"])
    path = tmp_path / "ai_settings.yaml"
    save_profile(profile, path)
    assert "ai_goals" in path.read_text()
    assert load_profile(path) == profile


@pytest.mark.parametrize(
    "goals", [[], ["", "  "], ["a", "b", "c", "d", "e", "f"]], ids=["none", "blank", "six"]
)
def test_goals_must_be_one_to_five(goals: list[str]) -> None:
    with pytest.raises(ConfigError):
        make_profile("n", "r", goals)


def test_broken_profile_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ai_settings.yaml"
    path.write_text("ai_name: [unclosed")
    with pytest.raises(ConfigError, match="Cannot read the agent profile"):
        load_profile(path)
    path.write_text("ai_name: x\nai_role: y\n")
    with pytest.raises(ConfigError, match="ai_goals"):
        load_profile(path)
