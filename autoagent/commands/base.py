"""Commands are plain typed functions; their schema and description come from the signature."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..errors import CommandError, describe_validation

if TYPE_CHECKING:
    from ..sandbox import Sandbox
    from ..settings import Settings
    from ..workspace import Workspace


class Risk(StrEnum):
    LOW = "low"  # read, list, search, browse, memory
    MEDIUM = "medium"  # write, append
    HIGH = "high"  # delete, execute code or shell, downloads


@dataclass
class CommandContext:
    """What a command may use. Commands never reach past it."""

    workspace: Workspace
    settings: Settings
    run_dir: Path  # full outputs are saved here, outside the workspace
    ask_human: Callable[[str], str] = lambda question: "No human is available to answer."
    # Calls the fast model with one prompt and returns its text (used to answer questions
    # about long pages); None when no model is wired in.
    ask_model: Callable[[str], str] | None = None
    # Where programs run; built from the settings on first use when not given.
    sandbox: Sandbox | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    name: str
    description: str
    risk: Risk
    function: Callable[..., str]
    arguments: type[BaseModel]
    needs_approval: bool = True  # False only for commands that are themselves a talk with the human

    def args_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments: shown to the model, and the base of the grammar
        that holds a local model's reply to the registered commands."""
        return self.arguments.model_json_schema()

    def signature(self) -> str:
        """`name(arg: type, ...)`, as shown to the model."""
        schema = self.args_schema()
        required = set(schema.get("required", []))
        parts = []
        for name, prop in schema.get("properties", {}).items():
            kind = prop.get("type", "any")
            parts.append(f"{name}: {kind}" + ("" if name in required else " = optional"))
        return f"{self.name}({', '.join(parts)})"

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check the model's arguments; raise CommandError naming every problem."""
        try:
            return self.arguments.model_validate(args).model_dump()
        except ValidationError as exc:
            problems = describe_validation(exc, lambda field: field or "arguments")
            raise CommandError(
                f"Invalid arguments for {self.signature()}: {problems}. Nothing was run."
            ) from exc

    def __call__(self, ctx: CommandContext, args: dict[str, Any]) -> str:
        return self.function(ctx, **self.validate(args))


def command(risk: Risk, *, needs_approval: bool = True) -> Callable[[Callable[..., str]], Command]:
    """Declare a command from a function `f(ctx, arg: type, ...) -> str` and its docstring."""

    def declare(function: Callable[..., str]) -> Command:
        hints = get_type_hints(function)
        fields: dict[str, Any] = {}
        params = list(inspect.signature(function).parameters.values())[1:]  # skip ctx
        for param in params:
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (hints[param.name], default)
        arguments = create_model(
            f"{function.__name__}_arguments",
            __config__=ConfigDict(extra="forbid", strict=False),
            **fields,
        )
        doc = inspect.getdoc(function) or ""
        return Command(
            name=function.__name__,
            description=doc.split("\n\n")[0].replace("\n", " "),
            risk=risk,
            function=function,
            arguments=arguments,
            needs_approval=needs_approval,
        )

    return declare


class Registry:
    """The commands an agent may use, by name."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: dict[str, Command] = {}
        for cmd in commands:
            self.add(cmd)

    def add(self, cmd: Command) -> None:
        if cmd.name in self._commands:
            raise ValueError(f"command {cmd.name!r} is declared twice")
        self._commands[cmd.name] = cmd

    def get(self, name: str) -> Command:
        try:
            return self._commands[name]
        except KeyError:
            known = ", ".join(sorted(self._commands))
            raise CommandError(f"Unknown command {name!r}. Use one of: {known}.") from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._commands.values())

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def describe(self) -> list[dict[str, str]]:
        """One entry per command, for the prompt."""
        return [
            {"signature": c.signature(), "description": c.description, "risk": c.risk.value}
            for c in self._commands.values()
        ]
