"""Commands are plain typed functions; their schema and description come from the signature."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ...base.errors import CommandError, describe_validation
from ...base.risk import Risk
from ...base.settings import Settings

if TYPE_CHECKING:
    from ..sandbox import Sandbox
    from ..workspace import Workspace


@dataclass
class CommandContext:
    """What a command may use. Commands never reach past it."""

    workspace: Workspace
    settings: Settings
    run_dir: Path  # full outputs are saved here, outside the workspace
    # Asks the human a question for the step given; see authorize.Human.ask.
    ask_human: Callable[[str, int], str] = lambda question, step: "No human can answer."
    step: int = 0  # the step whose command runs
    # Asks the fast model a question about a long page: (url, question, the page's relevant
    # excerpts, marked as untrusted data) -> its answer; None when no model is wired in.
    ask_about_page: Callable[[str, str, str], str] | None = None
    # Where programs run; built from the settings on first use when not given.
    sandbox: Sandbox | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class InvalidArguments(ValueError):
    """The arguments do not fit their schema; the message names every problem."""


class Arguments(Protocol):
    """What a command's arguments must be: a JSON schema, and a check against it."""

    def schema(self) -> dict[str, Any]: ...

    def check(self, args: dict[str, Any]) -> dict[str, Any]:
        """The arguments to call the command with; raise InvalidArguments if they do not fit."""
        ...


@dataclass(frozen=True)
class ModelArguments:
    """Arguments declared by a typed function's signature (the built-in commands)."""

    model: type[BaseModel]

    def schema(self) -> dict[str, Any]:
        return self.model.model_json_schema()

    def check(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.model.model_validate(args).model_dump()
        except ValidationError as exc:
            raise InvalidArguments(describe_validation(exc, lambda f: f or "arguments")) from exc


class SchemaArguments:
    """Arguments declared by a JSON schema from elsewhere (e.g. an MCP tool's input schema).

    Raises InvalidArguments at once if the schema cannot be used (see tool_schema.py)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        from .tool_schema import UnusableSchema, checked_validator

        try:
            self._validator = checked_validator(schema)
        except UnusableSchema as exc:
            raise InvalidArguments(str(exc)) from exc
        if schema.get("type", "object") != "object":
            raise InvalidArguments("the arguments must be an object")
        self._schema = schema

    def schema(self) -> dict[str, Any]:
        return self._schema

    def check(self, args: dict[str, Any]) -> dict[str, Any]:
        from .tool_schema import UnusableSchema, errors

        try:
            found = errors(self._validator, args)
        except UnusableSchema as exc:
            raise InvalidArguments(f"they could not be checked: {exc}") from exc
        if found:
            problems = "; ".join(
                f"{'.'.join(map(str, e.path)) or 'arguments'}: {e.message}"
                for e in sorted(found, key=lambda e: list(map(str, e.path)))
            )
            raise InvalidArguments(problems)
        return dict(args)


@dataclass(frozen=True)
class Command:
    name: str
    description: str
    risk: Risk
    function: Callable[..., str]
    arguments: Arguments
    # Whether running it can change anything (files, programs, the world): then it is on the
    # disk as started before it runs, so that a crash never runs it twice. Built-in low-risk
    # commands only read, list, search or ask; a tool from elsewhere is never assumed harmless.
    changes_things: bool = True
    # What the loop does with it, declared here so that no name is special anywhere else.
    # It is a question to the human: not approved first (asking is itself the talk), refused
    # when no one can answer, and asked again when a run stopped while it waited.
    asks_human: bool = False
    # Once authorised, the run ends: what the command returns is the reason, and its
    # `goal_report` argument, if it has one, the report per goal. It runs as no step.
    ends_run: bool = False
    # Its success makes a file, which counts as progress when the loop looks for stalls.
    makes_files: bool = False
    # The Settings field (a bool) that turns it on; None means always available.
    enabled_by: str | None = None
    # It changes nothing (it reads, lists, searches, browses, asks or finishes): a read-only
    # run offers it. Declared, never inferred: a tool from elsewhere is not read-only.
    read_only: bool = False

    @property
    def needs_approval(self) -> bool:
        """Whether the human is asked before it runs (unless the policy or 'y -N' says so)."""
        return not self.asks_human

    def enabled_in(self, settings: Settings) -> bool:
        """Whether `settings` turn it on."""
        return self.enabled_by is None or bool(getattr(settings, self.enabled_by))

    def offered_in(self, settings: Settings) -> bool:
        """Whether a run with `settings` offers it: turned on, and read-only in a read-only run."""
        return self.enabled_in(settings) and (self.read_only or not settings.read_only)

    def args_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments: shown to the model, and the base of the grammar
        that holds a local model's reply to the registered commands."""
        return self.arguments.schema()

    def signature(self) -> str:
        """`name(arg: type, ...)`, as shown to the model."""
        schema = self.args_schema()
        required = set(schema.get("required", []))
        parts = []
        for name, prop in schema.get("properties", {}).items():
            kind = prop.get("type", "any") if isinstance(prop, dict) else "any"
            if isinstance(kind, list):
                kind = "|".join(map(str, kind))
            parts.append(f"{name}: {kind}" + ("" if name in required else " = optional"))
        return f"{self.name}({', '.join(parts)})"

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check the model's arguments; raise CommandError naming every problem."""
        try:
            return self.arguments.check(args)
        except InvalidArguments as exc:
            raise CommandError(
                f"Invalid arguments for {self.signature()}: {exc}. Nothing was run."
            ) from exc

    def __call__(self, ctx: CommandContext, args: dict[str, Any]) -> str:
        return self.function(ctx, **self.validate(args))


def command(
    risk: Risk,
    *,
    asks_human: bool = False,
    ends_run: bool = False,
    makes_files: bool = False,
    enabled_by: str | None = None,
    read_only: bool = False,
) -> Callable[[Callable[..., str]], Command]:
    """Declare a command from a function `f(ctx, arg: type, ...) -> str` and its docstring;
    the flags say what the loop does with it (see Command)."""
    if enabled_by is not None:
        _check_switch(enabled_by)
    if read_only and risk is not Risk.LOW:
        raise ValueError("a command that changes nothing is low risk")

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
            arguments=ModelArguments(arguments),
            changes_things=risk is not Risk.LOW,
            asks_human=asks_human,
            ends_run=ends_run,
            makes_files=makes_files,
            enabled_by=enabled_by,
            read_only=read_only,
        )

    return declare


def _check_switch(name: str) -> None:
    """A command turned on by a setting names a bool field of Settings (a typo fails at once)."""
    declared = Settings.model_fields.get(name)
    if declared is None or declared.annotation is not bool:
        raise ValueError(f"enabled_by={name!r} is not a yes/no field of Settings")


@dataclass(frozen=True)
class Withdrawal:
    """Commands that went away during a run, and why (e.g. their MCP server stopped)."""

    commands: tuple[str, ...]
    message: str  # for the human and the model
    reported: bool = False  # already told, as the result of the call that found it out


class CommandSource(Protocol):
    """Commands that live outside the process and may go away during a run."""

    def withdrawn(self) -> list[Withdrawal]:
        """What went away since the last call; each withdrawal is given once."""
        ...

    def close(self) -> None:
        """Stop whatever serves the commands; nothing is left running."""
        ...


class Registry:
    """The commands an agent may use, by name."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: dict[str, Command] = {}
        self._sources: list[CommandSource] = []
        self._gone: dict[str, str] = {}  # withdrawn command -> why
        self._left_out: dict[str, str] = {}  # a command offered but not usable -> why
        for cmd in commands:
            self.add(cmd)

    def add(self, cmd: Command) -> None:
        if cmd.name in self._commands:
            raise ValueError(f"command {cmd.name!r} is declared twice")
        self._commands[cmd.name] = cmd

    def attach(self, source: CommandSource, commands: Iterable[Command]) -> None:
        """Add commands served by `source`; `refresh` drops them when it withdraws them."""
        self._sources.append(source)
        for cmd in commands:
            self.add(cmd)

    def leave_out(self, name: str, reason: str) -> None:
        """Note that `name` was offered (by an MCP server) but is not usable, and why: a call
        to it is told so."""
        if name not in self._commands:
            self._left_out[name] = reason

    def refresh(self) -> list[Withdrawal]:
        """Drop the commands their sources withdrew since the last refresh; return why."""
        withdrawals = [w for source in self._sources for w in source.withdrawn()]
        for withdrawal in withdrawals:
            for name in withdrawal.commands:
                if self._commands.pop(name, None) is not None:
                    self._gone[name] = withdrawal.message
        return withdrawals

    def close(self) -> None:
        """Stop every source (each one even if another fails)."""
        sources, self._sources = self._sources, []
        errors = []
        for source in sources:
            try:
                source.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def get(self, name: str) -> Command:
        try:
            return self._commands[name]
        except KeyError:
            if name in self._gone:
                raise CommandError(f"{name} is no longer available: {self._gone[name]}") from None
            if name in self._left_out:
                raise CommandError(f"{name} is not available: {self._left_out[name]}.") from None
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
