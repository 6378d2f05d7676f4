import json

import pytest

from autoagent.agent.agents import MAX_REASKS, ModelCaller, TaskCreationAgent
from autoagent.agent.tasks import TaskList
from autoagent.base.errors import ReplyError
from autoagent.model.pricing import PRICES, Spend
from autoagent.model.replies import ExecutionReply
from autoagent.model.testing import ScriptedChatModel, execution_reply


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
        [json.dumps({"tasks": ["Check facts", "", "Write report"], "order": [4, 42]})]
    )
    tasks = TaskList()
    tasks.add(["Write report", "Publish"])
    reply = TaskCreationAgent(c, "gpt-4o-mini", ["goal"]).create(
        "Search", "found", tasks.open, tasks.next_id
    )
    added, changed = tasks.plan(reply.tasks, reply.order)
    # "Check facts" was listed first, so the model named it 3; it is 3 here too.
    assert [t.text for t in added] == ["Check facts"] and changed is False
    assert [t.text for t in tasks.open] == ["Write report", "Publish", "Check facts"]
    prompt = model.seen[0][0]["content"]
    assert "1: Write report" in prompt and "2: Publish" in prompt and "ids 3, 4" in prompt
