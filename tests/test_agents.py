import json

import pytest

from autoagent.agents import MAX_REASKS, ModelCaller, PrioritizationAgent, TaskCreationAgent
from autoagent.errors import ReplyError
from autoagent.pricing import PRICES, Spend
from autoagent.replies import ExecutionReply
from autoagent.tasks import TaskList
from autoagent.testing import ScriptedChatModel, execution_reply


def caller(replies: list[str]) -> tuple[ModelCaller, ScriptedChatModel]:
    model = ScriptedChatModel(replies)
    return ModelCaller(model, Spend(), PRICES), model


def test_a_broken_reply_is_re_asked_with_the_problem_named() -> None:
    c, model = caller(["not json at all", execution_reply("finish", reason="done")])
    reply = c.ask("execution", [{"role": "user", "content": "go"}], "gpt-4o-mini", ExecutionReply)
    assert reply.command.name == "finish"
    second = model.seen[1]
    assert second[-2] == {"role": "assistant", "content": "not json at all"}
    assert "no JSON object" in second[-1]["content"]
    assert [r.problem is None for r in c.drain()] == [False, True]


def test_the_run_stops_after_three_re_asks() -> None:
    c, model = caller(["nope"] * 10)
    with pytest.raises(ReplyError, match="no usable reply in 4 tries"):
        c.ask("execution", [{"role": "user", "content": "go"}], "gpt-4o-mini", ExecutionReply)
    assert len(model.seen) == MAX_REASKS + 1


def test_spend_is_counted_from_usage() -> None:
    c, _ = caller([execution_reply("finish", reason="x")])
    c.ask("execution", [{"role": "user", "content": "go " * 100}], "gpt-4o-mini", ExecutionReply)
    assert c.spend.calls == 1 and c.spend.prompt_tokens > 0 and c.spend.cost > 0


def test_task_creation_and_prioritization_keep_the_list_whole() -> None:
    c, model = caller(
        [
            json.dumps({"tasks": ["Check facts", "", "Write report"]}),
            json.dumps({"order": [3, 42]}),
        ]
    )
    tasks = TaskList()
    tasks.add(["Write report"])
    new = TaskCreationAgent(c, "gpt-4o-mini", ["goal"]).create("Search", "found", ["Write report"])
    added = tasks.add(new)
    assert [t.text for t in added] == ["Check facts"]
    tasks.add(["Publish"])
    tasks.reorder(PrioritizationAgent(c, "gpt-4o-mini", ["goal"]).order(tasks.open))
    assert [t.text for t in tasks.open] == ["Publish", "Write report", "Check facts"]
    assert "1: Write report" in model.seen[1][0]["content"]
