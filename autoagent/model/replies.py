"""Reading the agents' JSON replies tolerantly, and never acting on a partial one."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, TypeVar

import json_repair
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from ..base.errors import describe_validation


class ReplyProblem(ValueError):
    """A reply could not be used; the message is shown to the model when re-asking."""


class FormatEchoed(ReplyProblem):
    """The reply gave the format's own words back instead of thoughts or arguments."""


# The words a reply's format is told with, and those its earlier example held: a reply that
# gives one back as a thought or an argument copied the format instead of answering (tiny
# models do), and it must never reach the screen as the agent's mind.
FORMAT_WORDS = frozenset(
    {"thoughts", "text", "reasoning", "plan", "criticism", "speak", "command", "name", "args",
     "argument", "arguments", "value", "command name", "string", "...",
     "what you think now", "why", "short step", "next step", "constructive self-criticism",
     "one sentence for the human"}
)  # fmt: skip
ARGUMENT_SAMPLES = frozenset({"value", "argument", "command name", "string", "..."})


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Thoughts(_Lenient):
    text: str = ""
    reasoning: str = ""
    plan: list[str] = Field(default_factory=list)
    criticism: str = ""
    speak: str = ""

    @field_validator("plan", mode="before")
    @classmethod
    def _plan_as_list(cls, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            lines = (line.strip().lstrip("-*•").strip() for line in value.splitlines())
            return [line for line in lines if line]
        if isinstance(value, list):
            return [str(item).strip() for item in value if str(item).strip()]
        return [str(value)]

    @field_validator("text", "reasoning", "criticism", "speak", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> str:
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value)


class CommandCall(_Lenient):
    name: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("args", mode="before")
    @classmethod
    def _args_default(cls, value: Any) -> Any:
        return {} if value is None else value


class ExecutionReply(_Lenient):
    thoughts: Thoughts = Field(default_factory=Thoughts)
    command: CommandCall
    # Commands the reply held after the first, which were not used (names only). Not part of
    # the format the model is asked for; the model is told they were dropped.
    dropped: SkipJsonSchema[list[str]] = Field(default_factory=list, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _first_command(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {**data, "dropped": []}
        command = data.get("command")
        if isinstance(command, list) and command:
            data["command"], *others = command
            data["dropped"] = [_command_name(other) for other in others]
        return data


def _command_name(value: Any) -> str:
    """The name of a command object, or of the command in a whole reply."""
    if isinstance(value, dict):
        inner = value.get("command", value)
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            return inner["name"]
    return "an unreadable command"


class TaskCreationReply(_Lenient):
    tasks: list[str]
    # The prioritization role, in the same call: every open task's id, old and new (the new
    # ones numbered on from the next id, as listed), most useful first. Empty: keep the order.
    order: list[int] = Field(default_factory=list)

    @field_validator("tasks", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        if isinstance(value, list):
            # Models sometimes send {"task": "..."} objects instead of strings.
            return [
                (item.get("task") or item.get("text") or item.get("name") or "")
                if isinstance(item, dict)
                else item
                for item in value
            ]
        return value

    @field_validator("order", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        """An order the model garbled is no reason to lose its tasks: what is not an id goes."""
        if value is None:
            return []
        if not isinstance(value, list):
            return value
        ids = []
        for item in value:
            try:
                ids.append(int(item))
            except (TypeError, ValueError):
                continue
        return ids


Reply = TypeVar("Reply", bound=BaseModel)

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def _words(value: str) -> str:
    return " ".join(value.lower().strip(" .:;\"'").split())


def echoed_format(reply: ExecutionReply) -> str | None:
    """What in `reply` only repeats the format's own words (or, for an argument, the command's
    own name, as in `list_files {"directory": "list_files"}`); None when nothing does."""
    thoughts = reply.thoughts
    fields = [("text", thoughts.text), ("reasoning", thoughts.reasoning)]
    fields += [("plan", step) for step in thoughts.plan]
    fields += [("criticism", thoughts.criticism), ("speak", thoughts.speak)]
    for field, value in fields:
        if _words(value) in FORMAT_WORDS:
            return f"thoughts.{field} is {value!r}, a word of the reply format, not your thought"
    name = _words(reply.command.name)
    for argument, value in reply.command.args.items():
        if isinstance(value, str) and _words(value) in ARGUMENT_SAMPLES | {name}:
            return f"the argument {argument} is {value!r}, not a value for it"
    return None


def without_echoes(thoughts: Thoughts) -> Thoughts:
    """`thoughts` with what only repeats the format's words left empty: taken when a model
    gave them twice, so that the step goes on and they never show as its mind."""
    kept = {
        field: "" if _words(value) in FORMAT_WORDS else value
        for field, value in thoughts.model_dump(exclude={"plan"}).items()
    }
    plan = [step for step in thoughts.plan if _words(step) not in FORMAT_WORDS]
    return Thoughts(**kept, plan=plan)


def parse_reply(text: str, reply_type: type[Reply], *, echoes: bool = False) -> Reply:
    """Find the JSON in `text`, repair small syntax slips, and validate it as `reply_type`.

    A reply holding several objects (an array of them, or one after another) is read as its
    first; an execution reply then names the commands of the others in `dropped`. One that
    gives the format's own words back is refused (FormatEchoed), unless `echoes`: then those
    thoughts are left empty."""
    data, *others = _without_surrogates(_load_json(text))
    if not isinstance(data, dict):
        raise ReplyProblem("the reply must be one JSON object")
    try:
        reply = reply_type.model_validate(data)
    except ValidationError as exc:
        problems = describe_validation(exc, lambda field: field or "reply")
        raise ReplyProblem(f"the JSON does not match the format ({problems})") from exc
    if isinstance(reply, ExecutionReply):
        if echoes:
            reply.thoughts = without_echoes(reply.thoughts)
        elif (echo := echoed_format(reply)) is not None:
            raise FormatEchoed(f"{echo}. Write your own thoughts and real arguments")
        reply.dropped += [_command_name(other) for other in others]
    return reply


def _load_json(text: str) -> list[Any]:
    """The JSON values of a reply: one, or several objects when it held more than one."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            values = json.loads(stripped)
        except json.JSONDecodeError:
            values = None
        if isinstance(values, list) and values and all(isinstance(v, dict) for v in values):
            return values
    candidate = _candidate(text)
    if candidate is None:
        raise ReplyProblem("the reply holds no JSON object")
    try:
        return [json.loads(candidate)]
    except json.JSONDecodeError:
        pass
    objects = _objects_in_a_row(candidate)
    if objects:  # whole objects, perhaps followed by prose
        return objects
    if _is_cut_off(candidate):
        # Repairing a truncated reply would invent its end (half a file, half a command).
        raise ReplyProblem("the JSON reply was cut off before its end")
    repaired = json_repair.loads(candidate)
    if not repaired:
        raise ReplyProblem("the reply is not valid JSON and could not be repaired")
    return [repaired]


def _objects_in_a_row(text: str) -> list[dict[str, Any]]:
    """The JSON objects at the start of `text`, one after another (commas or space between)."""
    decoder = json.JSONDecoder()
    objects: list[dict[str, Any]] = []
    position = 0
    while True:
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return objects
        if not isinstance(value, dict):
            return objects
        objects.append(value)
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1


def _candidate(text: str) -> str | None:
    """The most likely JSON object in a reply: fenced, bare, or embedded in prose."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return stripped
    for block in _FENCE.findall(text):
        if block.strip().startswith("{"):
            return block.strip()
    start = text.find("{")
    if start < 0:
        return None
    end = text.rfind("}")
    return text[start : end + 1] if end > start else text[start:]


def _is_cut_off(candidate: str) -> bool:
    """True when brackets or a string are still open at the end of the text."""
    depth = 0
    in_string = escaped = False
    for char in candidate:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return in_string or depth > 0


@cache  # building it takes about a millisecond, and every model call needs one
def schema_of(reply_type: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent to endpoints that can constrain their output (shared: do not change)."""
    return reply_type.model_json_schema()


THOUGHT_FIELDS = ("text", "reasoning", "criticism", "speak")


def execution_schema(
    commands: Iterable[tuple[str, dict[str, Any]]], *, paths: Sequence[str] = ()
) -> dict[str, Any]:
    """The execution reply's schema held to the registered commands: the command's name from
    the list, its arguments from that command's own schema, and no thought left empty. With
    `paths`, every `path` argument is one of them.

    Endpoints that enforce a schema (llama.cpp's grammars, vLLM, the local worker) then can
    only produce a command that exists, with arguments of the right shape; that is what lets
    a small model do simple work. Parsing stays lenient (ExecutionReply)."""
    text = {"type": "string", "minLength": 1}
    thoughts = {
        "type": "object",
        "properties": {
            "text": text,
            "reasoning": text,
            "plan": {"type": "array", "items": text, "minItems": 1},
            "criticism": text,
            "speak": text,
        },
        "required": [*THOUGHT_FIELDS[:2], "plan", *THOUGHT_FIELDS[2:]],
        "additionalProperties": False,
    }
    choices = [
        {
            "type": "object",
            "properties": {"name": {"const": name}, "args": _with_paths(_plain(args), paths)},
            "required": ["name", "args"],
            "additionalProperties": False,
        }
        for name, args in commands
    ]
    return {
        "type": "object",
        "properties": {"thoughts": thoughts, "command": {"anyOf": choices}},
        "required": ["thoughts", "command"],
        "additionalProperties": False,
    }


def _with_paths(args: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    properties = args.get("properties")
    if not paths or not isinstance(properties, dict) or "path" not in properties:
        return args
    return {**args, "properties": {**properties, "path": {"enum": list(paths)}}}


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A command's argument schema without pydantic's titles (noise for a grammar), and with
    its references inlined, so that it means the same inside the reply's schema."""
    out = {key: value for key, value in _inline_refs(schema).items() if key != "title"}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: _untitled(prop) for name, prop in out["properties"].items()}
    return out


def _untitled(prop: Any) -> Any:
    return {k: v for k, v in prop.items() if k != "title"} if isinstance(prop, dict) else prop


_REF_DEPTH = 8  # a type that contains itself is cut there, as "anything"


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with each local reference (#/$defs/NAME) replaced by what it names: a schema
    from elsewhere (an MCP tool's input schema) may have them, and they point at the root."""
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    if not defs:
        return schema

    def resolve(node: Any, depth: int) -> Any:
        if isinstance(node, list):
            return [resolve(item, depth) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
            target = defs.get(ref.rsplit("/", 1)[1])
            if target is None or depth >= _REF_DEPTH:
                return {}
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return resolve({**target, **rest}, depth + 1)
        return {
            key: resolve(value, depth)
            for key, value in node.items()
            if key not in {"$defs", "definitions"}
        }

    return resolve(schema, 0)


def _without_surrogates(data: Any) -> Any:
    """JSON escapes can make lone surrogates, which no file or terminal can take: replace them."""
    if isinstance(data, str):
        return data.encode("utf-8", "replace").decode("utf-8")
    if isinstance(data, list):
        return [_without_surrogates(item) for item in data]
    if isinstance(data, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in data.items()}
    return data
