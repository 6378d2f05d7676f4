"""End to end: the CLI in a pseudo-terminal, the real openai client, the local test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, PROMPT, checkpoints, finish, spawn

pytestmark = pytest.mark.slow


def write(name: str, content: str = "hello") -> str:
    return execution_reply("write_file", f"I will write {name}.", path=name, content=content)


def done(reason: str = "All goals met.") -> str:
    return execution_reply("finish", "Done.", reason=reason)


def test_y_runs_the_command_and_the_screen_shows_the_agents_mind(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", write("hello.txt", "hi there"), done())
    server.script("task-creation", json.dumps({"tasks": ["Check hello.txt"]}))
    child = spawn(tmp_path, server, "run", *PROFILE)
    for label in ("THOUGHTS:", "REASONING:", "PLAN:", "CRITICISM:", "NEXT ACTION:"):
        child.expect_exact(label)
    child.expect_exact("COMMAND = write_file")
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact("RESULT (write_file)")
    child.expect_exact("NEW TASK:")
    child.expect(r"Step 1 · [\d,]+ tokens · \$\d")
    child.expect_exact("COMMAND = finish")
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact("Run finished:")
    child.expect_exact("All goals met.")
    child.expect_exact(str(tmp_path / "ws"))
    assert finish(child) == 0
    assert (tmp_path / "ws" / "hello.txt").read_text() == "hi there"
    [state] = checkpoints(tmp_path)
    assert state["status"] == "finished"
    # The finished task's result reached the task-creation agent.
    assert "Wrote" in server.requests_for("task-creation")[0]["messages"][0]["content"]


def test_n_stops_cleanly_and_runs_nothing(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", write("no.txt"))
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact(PROMPT)
    child.sendline("n")
    child.expect_exact("Run stopped:")
    assert finish(child) == 7
    assert not (tmp_path / "ws" / "no.txt").exists()
    [state] = checkpoints(tmp_path)
    assert state["status"] == "stopped" and state["step"] == 1


def test_feedback_goes_to_the_agent_and_the_command_does_not_run(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", write("wrong.txt"), write("right.txt"), done())
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact(PROMPT)
    child.sendline("Call the file right.txt please")
    child.expect_exact("Feedback sent to the agent")
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact(PROMPT)
    child.sendline("y")
    assert finish(child) == 0
    assert not (tmp_path / "ws" / "wrong.txt").exists()
    assert (tmp_path / "ws" / "right.txt").exists()
    second = server.requests_for("execution")[1]["messages"][-1]["content"]
    assert "Call the file right.txt please" in second


def test_empty_input_asks_again(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", write("a.txt"))
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact(PROMPT)
    child.sendline("")
    child.expect_exact(PROMPT)
    child.sendline("n")
    assert finish(child) == 7
    assert len(server.requests_for("execution")) == 1


def test_y_dash_n_runs_n_commands_then_asks_again(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", *(write(f"f{i}.txt") for i in range(4)), done())
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact(PROMPT)
    child.sendline("y -3")
    child.expect_exact("COMMAND = write_file")  # f3: asked again
    child.expect_exact(PROMPT)
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["f0.txt", "f1.txt", "f2.txt"]
    child.sendline("n")
    assert finish(child) == 7
    assert not (tmp_path / "ws" / "f3.txt").exists()


def test_ctrl_c_at_the_prompt_stops_cleanly(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", write("a.txt"))
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact(PROMPT)
    child.sendintr()
    child.expect_exact("Run stopped:")
    assert finish(child) == 7
    assert not (tmp_path / "ws" / "a.txt").exists()
    assert checkpoints(tmp_path)[0]["status"] == "stopped"


def test_continuous_never_asks(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", write("a.txt"), write("b.txt"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, "--continuous")
    child.expect_exact("Continuous mode")
    index = child.expect_exact([PROMPT, "Run finished:"])
    assert index == 1
    assert finish(child) == 0
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["a.txt", "b.txt"]


def test_continuous_limit_stops_after_n_commands(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", *(write(f"f{i}.txt") for i in range(5)))
    child = spawn(tmp_path, server, "run", *PROFILE, "-l", "2")
    child.expect_exact("Run stopped:")
    child.expect_exact("continuous limit")
    assert finish(child) == 4
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["f0.txt", "f1.txt"]


def test_max_steps_is_a_hard_cap(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", *(write(f"f{i}.txt") for i in range(5)))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--max-steps", "3")
    child.expect_exact("Reached the limit of 3 steps")
    assert finish(child) == 3
    assert len(list((tmp_path / "ws").iterdir())) == 3


def test_debug_logs_every_prompt_and_reply(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", write("a.txt", "content-marker-123"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--debug")
    child.expect(r"Debug log: (\S+debug\.log)")
    log_path = Path(child.match.group(1).strip())
    assert finish(child) == 0
    log = log_path.read_text()
    assert log_path.is_relative_to(tmp_path / "home")
    assert "You are Scout, a careful test agent" in log  # a prompt
    assert "content-marker-123" in log  # a raw reply
    assert "tokens" in log and "reply from execution in" in log


def test_memory_is_recalled_in_a_later_run(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", write("code.txt", "The launch code is 4242."), done())
    assert finish(spawn(tmp_path, server, "run", *PROFILE, "-c")) == 0
    server.requests.clear()
    server.script("execution", done())
    assert finish(spawn(tmp_path, server, "run", *PROFILE, "-c")) == 0
    first_prompt = server.requests_for("execution")[0]["messages"][-1]["content"]
    assert "Memories that may be relevant" in first_prompt
    assert "The launch code is 4242." in first_prompt


def test_no_endpoint_stops_before_the_loop_with_one_clear_sentence(tmp_path: Path) -> None:
    child = spawn(tmp_path, None, "run", *PROFILE, AUTOAGENT_LLM="openai")
    child.expect_exact("No model endpoint is configured: set OPENAI_API_KEY")
    assert finish(child) == 1
    assert not (tmp_path / "home" / "runs").exists()


def test_unreachable_endpoint_is_named(tmp_path: Path) -> None:
    child = spawn(tmp_path, None, "run", *PROFILE, OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    child.expect_exact("Cannot reach the model endpoint http://127.0.0.1:9/v1")
    assert finish(child) == 1


def test_profile_is_asked_saved_and_offered_again(tmp_path: Path, server: FakeOpenAIServer) -> None:
    child = spawn(tmp_path, server, "run", "-c")
    child.expect_exact("Name:")
    child.sendline("Planner")
    child.expect_exact("Role")
    child.sendline("plans trips")
    child.expect_exact("Goal 1:")
    child.sendline("Plan a trip to Rome")
    child.expect_exact("Goal 2:")
    child.sendline("")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    saved = (tmp_path / "ai_settings.yaml").read_text()
    assert "Planner" in saved and "Plan a trip to Rome" in saved

    child = spawn(tmp_path, server, "run", "-c")
    child.expect_exact("Goal 1: Plan a trip to Rome")
    child.expect_exact("Continue with this profile? [Y/n]")
    child.sendline("")
    child.expect_exact("Run finished:")
    assert finish(child) == 0

    child = spawn(tmp_path, server, "run", "-c", "-y")
    child.expect_exact("Run finished:")
    assert "Continue with this profile" not in (child.before or "")
    assert finish(child) == 0


def test_malformed_replies_are_re_asked_then_the_run_stops_clearly(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", "I think I should write a file", *(["{broken"] * 3))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("Run failed:")
    child.expect_exact("no usable reply in 4 tries")
    assert finish(child) == 1
    assert len(server.requests_for("execution")) == 4
    assert not (tmp_path / "ws").exists() or not any((tmp_path / "ws").iterdir())


def test_memory_commands_search_list_and_clear(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", write("fact.txt", "Bananas are berries."), done())
    assert finish(spawn(tmp_path, server, "run", *PROFILE, "-c")) == 0
    child = spawn(
        tmp_path, server, "memory", "search", "Which fruits are berries?", "--agent", "Scout"
    )
    child.expect_exact("Bananas are berries.")
    assert finish(child) == 0
    child = spawn(tmp_path, server, "memory", "list", "--agent", "Scout")
    child.expect(r"1 memories of Scout")
    assert finish(child) == 0
    child = spawn(tmp_path, server, "memory", "clear", "--agent", "Scout")
    child.expect_exact("Forget all 1 memories of Scout? [y/N]")
    child.sendline("n")
    child.expect_exact("Nothing was deleted.")
    assert finish(child) == 0
    child = spawn(tmp_path, server, "memory", "clear", "--agent", "Scout")
    child.expect_exact("[y/N]")
    child.sendline("y")
    child.expect_exact("Forgot 1 memories.")
    assert finish(child) == 0


def test_help_lists_the_commands(tmp_path: Path) -> None:
    child = spawn(tmp_path, None, "--help")
    child.expect_exact("run")
    assert finish(child) == 0


def placeholder_reply(command: str, **args: object) -> str:
    """What a tiny model gave back on its first step: the reply format's own example words."""
    thoughts = {
        "text": "what you think now",
        "reasoning": "why",
        "plan": ["short step", "next step"],
        "criticism": "constructive self-criticism",
        "speak": "one sentence for the human",
    }
    return json.dumps({"thoughts": thoughts, "command": {"name": command, "args": args}})


def test_a_reply_that_echoes_the_format_never_shows_as_the_agents_mind(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script(
        "execution",
        placeholder_reply("list_files", directory="list_files"),
        write("notes.txt"),
        done(),
    )
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("I will write notes.txt.")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    shown = child.before or ""
    for placeholder in ("what you think now", "constructive self-criticism", "short step"):
        assert placeholder not in shown
    reask = server.requests_for("execution")[1]["messages"][-1]["content"]
    assert "a word of the reply format" in reask
    system = server.requests_for("execution")[0]["messages"][0]["content"]
    assert "what you think now" not in system  # nothing of the sort to copy


def test_a_model_that_echoes_the_format_twice_goes_on_without_those_thoughts(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script(
        "execution",
        placeholder_reply("write_file", path="a.txt", content="hi"),
        placeholder_reply("write_file", path="a.txt", content="hi"),
        done(),
    )
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("RESULT (write_file)")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert len(server.requests_for("execution")) == 3  # asked again once, not more
    for placeholder in ("what you think now", "constructive self-criticism", "short step"):
        assert placeholder not in (child.before or "")
    assert (tmp_path / "ws" / "a.txt").read_text() == "hi"
