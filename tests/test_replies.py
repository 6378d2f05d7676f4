import json

import pytest

from autoagent.model.replies import (
    ExecutionReply,
    FormatEchoed,
    ReplyProblem,
    TaskCreationReply,
    parse_reply,
    schema_of,
)
from autoagent.model.testing import execution_reply

GOOD = {
    "thoughts": {"text": "t", "reasoning": "r", "plan": ["a", "b"], "criticism": "c", "speak": "s"},
    "command": {"name": "write_file", "args": {"path": "a.txt", "content": "hi"}},
}


def test_plain_json() -> None:
    reply = parse_reply(json.dumps(GOOD), ExecutionReply)
    assert reply.command.name == "write_file"
    assert reply.command.args == {"path": "a.txt", "content": "hi"}
    assert reply.thoughts.plan == ["a", "b"]


def test_json_in_prose_and_code_fence_with_extra_keys() -> None:
    text = "Here is my answer:\n```json\n" + json.dumps({**GOOD, "mood": "great"}) + "\n```\nBye."
    assert parse_reply(text, ExecutionReply).command.name == "write_file"
    assert (
        parse_reply("I think " + json.dumps(GOOD) + " is right", ExecutionReply).thoughts.text
        == "t"
    )


def test_bulleted_plan_string_becomes_a_list() -> None:
    data = {**GOOD, "thoughts": {**GOOD["thoughts"], "plan": "- first\n- second\n* third"}}
    assert parse_reply(json.dumps(data), ExecutionReply).thoughts.plan == [
        "first",
        "second",
        "third",
    ]


def test_small_syntax_slips_are_repaired() -> None:
    text = "{'tasks': ['one', 'two',],}"
    assert parse_reply(text, TaskCreationReply).tasks == ["one", "two"]


def test_a_cut_off_command_is_never_completed() -> None:
    whole = json.dumps(GOOD)
    cut = whole[: whole.index('"hi"') + 2]  # inside the content string
    with pytest.raises(ReplyProblem, match="cut off"):
        parse_reply(cut, ExecutionReply)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("no json here", "no JSON"),
        ('{"thoughts": {"text": "x"}}', "command"),
        ('{"command": {"name": "", "args": {}}}', "command.name"),
        ('{"command": {"name": "x", "args": "not an object"}}', "args"),
        ("[1, 2]", "no JSON"),
    ],
)
def test_unusable_replies_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ReplyProblem, match=problem):
        parse_reply(text, ExecutionReply)


def test_an_order_keeps_only_ids_and_never_costs_the_tasks() -> None:
    reply = parse_reply('{"tasks": ["a"], "order": [3, "1", "first", null, 2]}', TaskCreationReply)
    assert reply.tasks == ["a"] and reply.order == [3, 1, 2]
    assert parse_reply('{"tasks": []}', TaskCreationReply).order == []


def test_an_object_followed_by_prose_is_read() -> None:
    text = json.dumps(GOOD) + "\n```\nThis is my answer {with braces} and [brackets"
    assert parse_reply(text, ExecutionReply).command.name == "write_file"


@pytest.mark.parametrize(
    "text",
    [
        "[" + execution_reply("write_file", path="a") + ", " + execution_reply("delete_file") + "]",
        execution_reply("write_file", path="a") + "\n" + execution_reply("delete_file"),
        json.dumps(
            {
                "thoughts": {"text": "two at once"},
                "command": [
                    {"name": "write_file", "args": {"path": "a"}},
                    {"name": "delete_file", "args": {}},
                ],
            }
        ),
    ],
    ids=["array", "one-after-another", "command-list"],
)
def test_a_reply_with_several_commands_keeps_the_first_and_names_the_rest(text: str) -> None:
    reply = parse_reply(text, ExecutionReply)
    assert reply.command.name == "write_file" and reply.command.args == {"path": "a"}
    assert reply.dropped == ["delete_file"]


def test_dropped_commands_are_not_in_the_format_asked_for() -> None:
    assert "dropped" not in json.dumps(schema_of(ExecutionReply))
    assert parse_reply(execution_reply("finish", reason="x"), ExecutionReply).dropped == []


def test_a_reply_that_gives_back_the_formats_words_is_refused() -> None:
    echo = {
        "thoughts": {"text": "What you think now.", "plan": ["short step"]},
        "command": {"name": "read_file", "args": {"path": "notes.txt"}},
    }
    with pytest.raises(FormatEchoed, match=r"thoughts\.text is 'What you think now\.'"):
        parse_reply(json.dumps(echo), ExecutionReply)
    named = {"command": {"name": "list_files", "args": {"directory": "list_files"}}}
    with pytest.raises(FormatEchoed, match="the argument directory is 'list_files'"):
        parse_reply(json.dumps(named), ExecutionReply)
    fine = {
        "thoughts": {"text": "The notes may already hold the answer.", "plan": ["read them"]},
        "command": {"name": "read_file", "args": {"path": "notes.txt"}},
    }
    assert parse_reply(json.dumps(fine), ExecutionReply).command.args == {"path": "notes.txt"}
    taken = parse_reply(json.dumps(echo), ExecutionReply, echoes=True)
    assert taken.thoughts.text == "" and taken.thoughts.plan == []


def test_a_small_models_paths_are_the_files_its_goals_name() -> None:
    from autoagent.agent.agents import goal_files
    from autoagent.model.replies import execution_schema

    goals = ["Write the words hello world to hello.txt", "Then e.g. sum up in notes/summary.md"]
    assert goal_files(goals) == ("hello.txt", "notes/summary.md")
    path = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    schema = execution_schema([("write_file", path)], paths=goal_files(goals))
    [choice] = schema["properties"]["command"]["anyOf"]
    assert choice["properties"]["args"]["properties"]["path"] == {"enum": list(goal_files(goals))}
    free = execution_schema([("write_file", path)])["properties"]["command"]["anyOf"][0]
    assert free["properties"]["args"]["properties"]["path"] == {"type": "string"}
