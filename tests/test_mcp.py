"""MCP tools as commands: the config, real servers over stdio and streamable HTTP, results."""

from __future__ import annotations

import pytest

from autoagent.commands.base import Command, Registry, Risk, SchemaArguments, Withdrawal
from autoagent.errors import CommandError

SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "tag": {"type": ["string", "null"]}},
    "required": ["a"],
    "additionalProperties": False,
}


def schema_command(name: str = "mcp__calc__add") -> Command:
    return Command(
        name=name,
        description="Add.",
        risk=Risk.HIGH,
        function=lambda ctx, **args: f"got {args}",
        arguments=SchemaArguments(SCHEMA),
    )


def test_a_json_schema_command_checks_its_arguments_before_anything_runs() -> None:
    cmd = schema_command()
    assert cmd.args_schema() == SCHEMA
    assert cmd.signature() == "mcp__calc__add(a: integer, tag: string|null = optional)"
    assert cmd.validate({"a": 2}) == {"a": 2}
    with pytest.raises(CommandError) as caught:
        cmd.validate({"a": "two", "extra": 1})
    message = str(caught.value)
    assert "a: 'two' is not of type 'integer'" in message
    assert "'extra' was unexpected" in message
    assert message.endswith("Nothing was run.")


def test_an_invalid_json_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        SchemaArguments({"type": "object", "properties": {"a": {"type": "nonsense"}}})


class OneShot:
    def __init__(self, withdrawal: Withdrawal) -> None:
        self.pending = [withdrawal]
        self.closed = False

    def withdrawn(self) -> list[Withdrawal]:
        pending, self.pending = self.pending, []
        return pending

    def close(self) -> None:
        self.closed = True


def test_the_registry_drops_withdrawn_commands_and_says_why() -> None:
    source = OneShot(Withdrawal(("mcp__calc__add",), "The server 'calc' stopped."))
    registry = Registry()
    registry.attach(source, [schema_command(), schema_command("mcp__calc__sub")])
    assert [w.message for w in registry.refresh()] == ["The server 'calc' stopped."]
    assert registry.refresh() == []
    assert [c.name for c in registry] == ["mcp__calc__sub"]
    with pytest.raises(CommandError, match="no longer available: The server 'calc' stopped"):
        registry.get("mcp__calc__add")
    registry.close()
    assert source.closed
