"""`--output json`: the loop's events as JSON Lines on stdout, one object per event.

Each line is an envelope that stays the same whatever the events hold:

    {"type": "Proposed", "schema": 1, "run": "...", "step": 3, "time": 1700000000.0, "data": {...}}

`type` is the event's tag, `data` the event itself, serialized through the same union the
journal uses (events.py), so a new event type is in the stream, and in its schema
(`autoagent schema events`), without a line here. `schema` changes only when a line stops
meaning what it meant.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, TextIO, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from ..agent.events import Event, RunEnded, to_data
from ..base.text import strip_terminal_escapes, trim_middle

SCHEMA_VERSION = 1
SUMMARY_REASON_CHARS = 200


def claim_stdout() -> TextIO:
    """Keep stdout for the JSON lines alone: they go to a copy of it, and file descriptor 1
    points at stderr from now on, so whatever else writes there (a print, a library, a child
    process) lands on stderr."""
    sys.stdout.flush()
    lines = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    return lines


class EventStream:
    """Writes each event as one JSON line; `step` tells the run's step at the moment, for the
    events that do not carry theirs."""

    def __init__(self, out: TextIO, run_id: str, step: Callable[[], int]) -> None:
        self.out = out
        self.run_id = run_id
        self.step = step
        self._open = True

    def show(self, event: Event) -> None:
        if not self._open:
            return
        line = {
            "type": event.event,
            "schema": SCHEMA_VERSION,
            "run": self.run_id,
            "step": _step_of(event, self.step),
            "time": time.time(),
            "data": to_data(event),
        }
        try:
            # ASCII only: no control character reaches a terminal the stream is shown on.
            self.out.write(json.dumps(line, ensure_ascii=True) + "\n")
            self.out.flush()
        except BrokenPipeError:  # the reader left (`| head`): the run goes on, unwatched
            self._open = False

    def close(self) -> None:
        pass


def _step_of(event: Event, current: Callable[[], int]) -> int:
    record = getattr(event, "record", None)
    if record is not None:
        return int(record.step)
    own = getattr(event, "step", None)
    if isinstance(own, int):
        return own
    if isinstance(event, RunEnded):
        return event.steps
    return current()


def summary(event: RunEnded | None, code: int) -> str:
    """The one line said on stderr when a run with `--output json` ends."""
    if event is None:
        return f"The run ended without its last event; exit {code}."
    reason = " ".join(strip_terminal_escapes(event.reason).split())
    cause = f" ({event.cause})" if event.cause else ""
    return (
        f"Run {event.status}{cause} after {event.steps} steps, "
        f"{event.spend.total_tokens:,} tokens, ${event.spend.cost:.4f}; exit {code}: "
        f"{trim_middle(reason, SUMMARY_REASON_CHARS)}"
    )


class _Line(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    run: str = Field(description="The run's id (`autoagent show ID`, `autoagent resume ID`).")
    step: int = Field(description="The step the event belongs to (0 before the first).")
    time: float = Field(description="When the event was written, in seconds since the epoch.")


def _line_model(kind: Any) -> type[BaseModel]:
    tag: str = kind.__dataclass_fields__["event"].default
    tagged: Any = Literal[tag]
    version: Any = Literal[SCHEMA_VERSION]
    doc = (kind.__doc__ or "").strip()
    if not doc or doc.startswith(f"{tag}("):  # the signature a dataclass gets for a docstring
        doc = f"A line holding a {tag} event."
    model: type[BaseModel] = create_model(
        f"{tag}Line",
        __base__=_Line,
        __doc__=doc,
        type=(tagged, ...),
        schema_version=(
            version,
            Field(alias="schema", description="The version of this line's layout."),
        ),
        data=(kind, Field(description=f"The {tag} event.")),
    )
    return model


def events_schema() -> dict[str, Any]:
    """The JSON Schema of one line of the stream."""
    lines = [_line_model(kind) for kind in get_args(Event)]
    union: Any = Union[tuple(lines)]  # noqa: UP007 (a union made at run time)
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[union, Field(discriminator="type")])
    schema: dict[str, Any] = adapter.json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"autoagent event stream, schema {SCHEMA_VERSION}"
    return schema
