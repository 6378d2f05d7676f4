from pathlib import Path

import pytest

from autoagent.base.errors import ConfigError
from autoagent.base.settings import env_names, load_settings

ROOT = Path(__file__).parent.parent


def test_flags_beat_environment_which_beats_dotenv_which_beats_defaults(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "AUTOAGENT_MODEL=from-dotenv\nAUTOAGENT_FAST_MODEL=fast-dotenv\nAUTOAGENT_MAX_STEPS=7\n"
    )
    env = {"AUTOAGENT_MODEL": "from-env", "AUTOAGENT_FAST_MODEL": "fast-env"}
    settings = load_settings({"model": "from-flag"}, env, dotenv)
    assert settings.model == "from-flag"
    assert settings.fast_model == "fast-env"
    assert settings.max_steps == 7
    assert settings.recent_steps == 4  # the default


def test_invalid_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AUTOAGENT_MAX_STEPS"):
        load_settings({}, {"AUTOAGENT_MAX_STEPS": "many"}, None)


def test_env_template_documents_every_setting() -> None:
    template = (ROOT / ".env.template").read_text()
    lines = template.splitlines()
    for env_name in env_names().values():
        assert any(line.lstrip("# ").startswith(env_name + "=") for line in lines), env_name
        index = next(
            i for i, line in enumerate(lines) if line.lstrip("# ").startswith(env_name + "=")
        )
        assert lines[index - 1].startswith("#") and len(lines[index - 1]) > 5, (
            f"{env_name} needs a comment"
        )
