"""The loop driven in-process: the real openai client, the local server, a scripted human."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoagent.agent.events import CommandStarted, LoopWarning, RunEnded, TasksChanged, Thinking
from autoagent.agent.loop import AgentLoop
from autoagent.agent.profile import make_profile
from autoagent.agent.runner import prepare_run
from autoagent.base.risk import Risk
from autoagent.base.settings import Settings
from autoagent.base.status import StopCause
from autoagent.human.authorize import ScriptedHuman
from autoagent.model.llm import OpenAIChatModel
from autoagent.model.testing import FakeOpenAIServer, Fault, execution_reply, role_of
from autoagent.store.embeddings import WordEmbedder
from autoagent.tools.commands import default_registry
from autoagent.tools.commands.base import Command, CommandContext, command

PROFILE = make_profile("Scout", "a test agent", ["Test the loop"])


def make_loop(
    tmp_path: Path, server: FakeOpenAIServer, human: Any = None, **settings: Any
) -> AgentLoop:
    config = Settings(
        home=tmp_path / "home",
        workspace=tmp_path / "ws",
        openai_base_url=server.base_url,
        max_retries=0,
        **settings,
    )
    model = OpenAIChatModel(api_key="t", base_url=server.base_url, max_retries=0)
    return prepare_run(config, human or ScriptedHuman([]), profile=PROFILE, model=model)


def run(loop: AgentLoop) -> Iterator[Any]:
    with loop:
        yield from loop.run()


def ended(events: list[Any]) -> RunEnded:
    assert isinstance(events[-1], RunEnded)
    return events[-1]


def prompts_seen(server: FakeOpenAIServer) -> list[str]:
    return [r["messages"][-1]["content"] for r in server.requests_for("execution")]


def test_a_repeated_command_is_named_to_the_model_then_stops_a_continuous_run(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", *[execution_reply("list_files", directory=".")] * 6)
    events = list(run(make_loop(tmp_path, server, continuous=True)))
    warnings = [e for e in events if isinstance(e, LoopWarning)]
    assert [w.escalated for w in warnings] == [False]
    assert "ran 3 times with the same result" in warnings[0].problem
    assert "going round in circles" in prompts_seen(server)[3]
    end = ended(events)
    assert end.status == "stopped" and "looping" in end.reason and "list_files" in end.reason
    assert end.steps == 4


def test_an_a_b_a_b_cycle_is_noticed(tmp_path: Path, server: FakeOpenAIServer) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "a.txt").write_text("a")
    a = execution_reply("list_files", directory=".")
    b = execution_reply("read_file", path="a.txt")
    server.script("execution", a, b, a, b)
    events = list(run(make_loop(tmp_path, server, continuous=True)))
    [warning] = [e for e in events if isinstance(e, LoopWarning)]
    assert "cycle" in warning.problem


def test_steps_with_nothing_new_are_a_stall(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script(
        "execution",
        *(execution_reply("list_files", directory=d) for d in [".", "./", "./.", "././", "a/.."]),
    )
    events = list(run(make_loop(tmp_path, server, continuous=True, stall_steps=3)))
    warnings = [e for e in events if isinstance(e, LoopWarning)]
    assert warnings and "brought no new result" in warnings[0].problem


def test_interactive_loop_cancels_y_dash_n(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", *[execution_reply("list_files", directory=".")] * 5)
    human = ScriptedHuman(["y -10", "n"])
    events = list(run(make_loop(tmp_path, server, human)))
    assert [w.escalated for w in events if isinstance(w, LoopWarning)] == [False, True]
    # Asked at step 1 (y -10), then again once the loop went on despite the warning.
    assert [p.step for p in human.asked] == [1, 5]


def test_the_prompt_stays_under_its_token_budget_over_100_steps(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    (tmp_path / "ws").mkdir()
    for i in range(10):
        (tmp_path / "ws" / f"doc{i}.txt").write_text(f"document {i} " + "lorem ipsum " * 400)
    server.script(
        "execution",
        *(execution_reply("read_file", path=f"doc{i % 10}.txt") for i in range(100)),
    )
    budget = 2500
    loop = make_loop(
        tmp_path, server, continuous=True, max_steps=100, prompt_tokens=budget, stall_steps=1000
    )
    loop.detector.stall_steps = 10_000
    events = list(run(loop))
    assert ended(events).steps == 100
    sizes = [
        sum(len(m["content"]) for m in r["messages"]) // 4 for r in server.requests_for("execution")
    ]
    assert len(sizes) == 100 and max(sizes) <= budget
    assert "Earlier steps, in short" in prompts_seen(server)[-1]  # old steps summarized


def test_budget_stops_the_run_and_a_higher_one_resumes_it(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script(
        "execution", *(execution_reply("write_file", path=f"f{i}", content="x") for i in range(9))
    )
    expensive = {"gpt-4o-mini": (1000.0, 1000.0)}  # dollars per million tokens
    loop = make_loop(tmp_path, server, continuous=True, budget=1.0, prices=expensive)
    end = ended(list(run(loop)))
    assert end.status == "stopped" and "budget of $1.00 is spent" in end.reason
    spent, steps = end.spend.cost, end.steps
    assert 0.5 < spent <= 1.0  # stopped before the call that would pass it

    config = Settings(
        home=tmp_path / "home",
        workspace=tmp_path / "ws",
        openai_base_url=server.base_url,
        continuous=True,
        budget=spent + 1.0,
        prices=expensive,
        max_retries=0,
    )
    model = OpenAIChatModel(api_key="t", base_url=server.base_url, max_retries=0)
    resumed = prepare_run(config, ScriptedHuman([]), resume=loop.state.run_id, model=model)
    end2 = ended(list(run(resumed)))
    assert end2.steps > steps and end2.spend.cost > spent


def test_a_failed_model_call_after_a_command_never_repeats_that_command(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", execution_reply("append_to_file", path="log.txt", content="once\n"))
    server.script("task-creation", Fault(401, '{"error": {"message": "key revoked"}}'))
    loop = make_loop(tmp_path, server, continuous=True)
    end = ended(list(run(loop)))
    assert end.status == "failed" and "OPENAI_API_KEY" in end.reason

    server.script("execution", execution_reply("finish", reason="done"))
    config = Settings(
        home=tmp_path / "home",
        workspace=tmp_path / "ws",
        openai_base_url=server.base_url,
        continuous=True,
        max_retries=0,
    )
    model = OpenAIChatModel(api_key="t", base_url=server.base_url, max_retries=0)
    resumed = prepare_run(config, ScriptedHuman([]), resume=loop.state.run_id, model=model)
    assert ended(list(run(resumed))).status == "finished"
    assert (tmp_path / "ws" / "log.txt").read_text() == "once\n"
    assert "Step 1: append_to_file" in prompts_seen(server)[-1]


def test_finish_reports_per_goal_and_lists_the_files_made(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script(
        "execution",
        execution_reply("write_file", path="out/report.md", content="# Report"),
        execution_reply(
            "finish", reason="Report written.", goal_report=["Test the loop: met (out/report.md)"]
        ),
    )
    end = ended(list(run(make_loop(tmp_path, server, continuous=True))))
    assert end.status == "finished" and end.goal_report == ["Test the loop: met (out/report.md)"]
    assert end.files == ["out/report.md"]


def test_journal_is_an_audit_trail(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", execution_reply("write_file", path="a.txt", content="x"))
    human = ScriptedHuman(["y", "no thanks, finish now", "n"])
    loop = make_loop(tmp_path, server, human)
    list(run(loop))
    events = loop.journal.events()
    kinds = [e["event"] for e in events]
    for kind in ("RunStarted", "model_call", "Proposed", "Authorized", "CommandDone", "RunEnded"):
        assert kind in kinds
    decisions = [e["record"]["decision"] for e in events if e["event"] == "Authorized"]
    assert [(d["kind"], d["by"], d["channel"]) for d in decisions] == [
        ("approve", "human", "script"),
        ("feedback", "human", "script"),
        ("stop", "human", "script"),
    ]
    assert decisions[1]["text"] == "no thanks, finish now"
    [done] = [e["record"] for e in events if e["event"] == "CommandDone"]
    assert done["status"] == "ran" and done["result"]["ok"] and done["proposal"]["command"]
    call = next(e for e in events if e["event"] == "model_call")
    assert call["prompt_digest"] and call["reply"] and call["prompt_tokens"] > 0
    state = json.loads((loop.journal.run_dir / "checkpoint.json").read_text())
    assert state["status"] == "stopped" and state["spend"]["calls"] == len(
        [e for e in events if e["event"] == "model_call"]
    )


def test_unknown_command_and_bad_arguments_go_back_to_the_model(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script(
        "execution",
        execution_reply("format_disk", drive="C"),
        execution_reply("write_file", path="a.txt"),
        execution_reply("write_file", path="a.txt", content=42),
    )
    human = ScriptedHuman(["y"] * 5)
    list(run(make_loop(tmp_path, server, human)))
    seen = prompts_seen(server)
    assert "Unknown command 'format_disk'" in seen[1]
    assert "content: Field required" in seen[2]
    assert "Input should be a valid string" in seen[3]
    # Nothing invalid was offered to the human: the only question was the closing finish.
    assert [p.name for p in human.asked] == ["finish"]
    assert not (tmp_path / "ws" / "a.txt").exists()


def test_task_creation_orders_the_list_in_the_same_call(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", execution_reply("list_files", directory="."))
    # The goal is task 1, done by the step; the new tasks are told they are 2 and 3.
    server.script("task-creation", json.dumps({"tasks": ["Write a", "Write b"], "order": [3, 2]}))
    events = list(run(make_loop(tmp_path, server, continuous=True, max_steps=1)))
    roles = [e.role for e in events if isinstance(e, Thinking)]
    assert roles == ["execution", "task-creation", "prioritization"]
    changed = next(e for e in events if isinstance(e, TasksChanged))
    assert [t.text for t in changed.open_tasks] == ["Write b", "Write a"]
    assert [role_of(r) for r in server.requests] == ["execution", "task-creation"]


def test_on_a_cpu_without_avx2_memory_uses_word_vectors_and_says_so(
    tmp_path: Path, server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for where in ("runner", "parts"):  # the note, and the embedder chosen
        monkeypatch.setattr(f"autoagent.agent.{where}.transformer_runs_here", lambda: False)
    server.script("execution", execution_reply("finish", reason="done"))
    loop = make_loop(tmp_path, server, continuous=True)
    events = list(run(loop))
    started = next(e for e in events if type(e).__name__ == "RunStarted")
    assert any("lacks AVX2 and FMA" in note for note in started.notices)
    assert isinstance(loop.memory.embedder, WordEmbedder)
    assert ended(events).status == "finished"


# What the loop does with a command comes from its declaration, never from its name.


@command(Risk.LOW, ends_run=True)
def done_here(ctx: CommandContext, summary: str) -> str:
    """Say the work is done."""
    return f"Done: {summary}"


@command(Risk.LOW, asks_human=True)
def consult(ctx: CommandContext, topic: str) -> str:
    """Ask the human about a topic."""
    return f"They said: {ctx.ask_human(f'What about {topic}?', ctx.step)}"


def with_commands(loop: AgentLoop, *commands: Command) -> AgentLoop:
    for declared in commands:
        loop.registry.add(declared)
    loop.executor.use_commands(loop.registry)
    return loop


def test_a_command_declared_to_end_the_run_ends_it(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", execution_reply("done_here", summary="all good"))
    loop = with_commands(make_loop(tmp_path, server, continuous=True), done_here)
    events = list(run(loop))
    end = ended(events)
    assert end.cause is StopCause.FINISHED and end.status == "finished"
    assert end.reason == "Done: all good" and end.steps == 1
    assert (
        "done_here(summary: string)"
        in server.requests_for("execution")[0]["messages"][0]["content"]
    )
    assert not [e for e in events if isinstance(e, CommandStarted)]  # it ran as no step


@pytest.mark.parametrize("makes_files", [True, False])
def test_a_command_declared_to_make_files_counts_as_progress(
    tmp_path: Path, server: FakeOpenAIServer, makes_files: bool
) -> None:
    @command(Risk.LOW, makes_files=makes_files)
    def stamp(ctx: CommandContext, n: int) -> str:
        """Write a stamp file."""
        ctx.workspace.write_text(f"stamps/{n}.txt", "stamped")
        return "Stamped."

    server.script("execution", *(execution_reply("stamp", n=n) for n in range(5)))
    loop = with_commands(make_loop(tmp_path, server, continuous=True, stall_steps=3), stamp)
    events = list(run(loop))
    warnings = [e.problem for e in events if isinstance(e, LoopWarning)]
    if makes_files:
        assert warnings == [] and ended(events).status == "finished"
    else:
        assert warnings and "brought no new result" in warnings[0]
    assert len(list((tmp_path / "ws" / "stamps").iterdir())) == 5


def test_a_command_declared_to_ask_the_human_is_a_question_not_an_approval(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", execution_reply("consult", topic="the road"))
    human = ScriptedHuman(["y"], replies=["go left"])
    loop = with_commands(make_loop(tmp_path, server, human), consult)
    end = ended(list(run(loop)))
    assert [p.name for p in human.asked] == ["finish"]  # consult ran without a y/n
    assert human.questions == ["What about the road?"] and end.status == "finished"
    assert "They said: go left" in prompts_seen(server)[1]

    # In a continuous run no one answers: the question is refused, and the run goes on.
    server.script("execution", execution_reply("consult", topic="the road"))
    nobody = ScriptedHuman([], can_answer=False)
    loop = with_commands(make_loop(tmp_path, server, nobody, continuous=True), consult)
    assert ended(list(run(loop))).status == "finished"
    assert nobody.questions == [] and "no one can in this run" in prompts_seen(server)[-1]


def test_a_command_declared_to_need_a_setting_is_enabled_only_by_it() -> None:
    @command(Risk.HIGH, enabled_by="shell_enabled")
    def run_tool(ctx: CommandContext) -> str:
        """Run a tool."""
        return "ran"

    assert not run_tool.enabled_in(Settings())
    assert run_tool.enabled_in(Settings(shell_enabled=True))
    assert [c.name for c in default_registry(Settings()) if c.enabled_by] == []
    assert "execute_shell" in default_registry(Settings(shell_enabled=True))
    with pytest.raises(ValueError, match="not a yes/no field of Settings"):
        command(Risk.LOW, enabled_by="shel_enabled")
    with pytest.raises(ValueError, match="not a yes/no field of Settings"):
        command(Risk.LOW, enabled_by="max_steps")
