import pytest

from autoagent.agent.agents import StepView
from autoagent.base.errors import ConfigError
from autoagent.model import prompts


def test_execution_prompt_holds_everything_the_agent_needs() -> None:
    system = prompts.render(
        "execution_system",
        name="Scout",
        role="a research assistant",
        goals=["Find the capital of France", "Write it to capital.txt"],
        commands=[
            {"signature": "write_file(path: string, content: string)", "description": "Write."}
        ],
        instructions="",
        read_only=False,
    )
    assert "AGENTS.md" not in system and "read-only" not in system
    assert "You are Scout, a research assistant" in system
    assert "1. Find the capital of France" in system and "2. Write it to capital.txt" in system
    assert "write_file(path: string, content: string): Write." in system
    assert '"thoughts"' in system and '"command"' in system
    user = prompts.render(
        "execution_user",
        task="Find the capital",
        open_tasks=["Write it down"],
        memories=["Paris is the capital of France"],
        recent_steps=[StepView(1, "web_search", '{"query": "capital"}', "Paris")],
        earlier_steps=["step 0: list_files {} -> empty"],
        notices=[],
        feedback="use a file",
    )
    for part in (
        "Find the capital",
        "Write it down",
        "Paris is the capital",
        "Step 1: web_search",
        "step 0: list_files",
        "use a file",
    ):
        assert part in user


def test_a_missing_variable_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(ConfigError, match="needs a variable"):
        prompts.render("task_creation", goals=["g"], task="t", result="r")


def test_a_missing_template_is_an_error() -> None:
    with pytest.raises(ConfigError, match="missing"):
        prompts.render("no_such_prompt")
