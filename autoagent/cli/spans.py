"""A run's events as OpenTelemetry spans: the run, each step under it, and under each step its
model calls (GenAI semantic conventions), its command and any wait for a human.

Only telemetry.py imports this module, and only when traces are configured. Spans carry
figures, names and decisions, never prompt text, replies or command arguments, unless prompt
capture is asked for (then redacted of the secrets redact.py knows).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import __version__
from ..agent.agents import CallSeen
from ..agent.events import (
    Authorized,
    CommandDone,
    CommandStarted,
    CommandsWithdrawn,
    Event,
    Invalid,
    LoopWarning,
    Proposed,
    RunEnded,
    RunStarted,
    StepFinished,
    TasksChanged,
    Thinking,
)
from ..base.decision import Actor, Decision
from ..base.redact import redact
from ..base.risk import Risk
from ..base.status import StopCause
from ..base.text import trim_middle

log = logging.getLogger(__name__)

REASON_CHARS = 300  # of a run's stop reason, in its span's status


class _CountingExporter(SpanExporter):
    """The OTLP/HTTP exporter, counting the batches that did not reach the collector."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self.failed += 1
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class RunTracer:
    """Turns a run's events and model calls into spans, exported in the background: a slow
    or absent collector costs the run nothing (a bounded queue; spans beyond it are dropped)."""

    def __init__(
        self,
        endpoint: str,
        *,
        provider_name: str,
        capture_prompts: bool,
        command_risk: Callable[[str], Risk | None],
        asks_human: Callable[[str], bool],
    ) -> None:
        self.endpoint = endpoint
        self._exporter = _CountingExporter(OTLPSpanExporter(endpoint=endpoint))
        resource = Resource.create({SERVICE_VERSION: __version__})
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: "autoagent"}))
        # No shutdown at interpreter exit: close() bounds the wait for the collector.
        self._provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self._provider.add_span_processor(BatchSpanProcessor(self._exporter))
        self._tracer = self._provider.get_tracer("autoagent", __version__)
        self._provider_name = provider_name
        self._capture = capture_prompts
        self._risk = command_risk
        self._asks_human = asks_human
        self._run: Span | None = None
        self._step: Span | None = None
        self._command: Span | None = None
        self._wait: Span | None = None
        self._proposed_at = 0  # when the open command was proposed (ns)
        self._broken = False

    # The loop's side.

    def see(self, event: Event) -> None:
        """Follow the run by its events, each seen here before it is shown."""
        self._guarded(self._observe, event)

    def model_call(self, seen: CallSeen) -> None:
        """A span for one model call, which has just ended."""
        self._guarded(self._model_span, seen)

    def close(self, wait: float) -> str | None:
        """End what is open, and give the spans at most `wait` seconds to leave; why some
        did not reach the collector, if they did not."""
        self._end_step(StatusCode.UNSET)
        if self._run is not None:
            self._run.end()
            self._run = None
        sent = threading.Event()

        def shut_down() -> None:
            self._provider.shutdown()
            sent.set()

        threading.Thread(target=shut_down, name="autoagent-traces-exit", daemon=True).start()
        if not sent.wait(wait):
            return (
                f"Traces still unsent after {wait:g} s were dropped: the collector at "
                f"{self.endpoint} did not take them."
            )
        if self._exporter.failed:
            return (
                f"Traces did not reach {self.endpoint} ({self._exporter.failed} batches "
                "dropped); the run went on without them."
            )
        return None

    def _guarded(self, handle: Callable[[Any], None], item: Any) -> None:
        # Tracing is an onlooker: a fault of its own turns it off, never stops the run.
        if self._broken:
            return
        try:
            handle(item)
        except Exception:
            self._broken = True
            log.exception("traces are off for the rest of the run")

    # Events to spans.

    def _observe(self, event: Event) -> None:
        match event:
            case RunStarted():
                self._start_run(event)
            case Thinking():
                self._open_step()
            case TasksChanged():
                self._open_step().add_event(
                    "tasks_changed", {"autoagent.tasks.added": len(event.added)}
                )
            case Proposed(record=record):
                step = self._open_step(record.step)
                self._end_command("not run")
                self._proposed_at = time.time_ns()
                risk = self._risk(record.command)
                self._command = self._tracer.start_span(
                    f"execute_tool {record.command}",
                    context=trace.set_span_in_context(step),
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": record.command,
                        "autoagent.step": record.step,
                        **({"autoagent.command.risk": risk.value} if risk else {}),
                    },
                    start_time=self._proposed_at,
                )
            case Invalid(record=record):
                self._open_step(record.step)
                self._end_command("invalid", StatusCode.ERROR)
            case Authorized(record=record) if record.decision is not None:
                self._authorized(record.decision, record.command)
            case CommandStarted(record=record) if self._asks_human(record.command):
                self._start_wait("answer", time.time_ns())
            case CommandDone(record=record) if record.result is not None:
                self._end_wait()
                if record.result.ok:
                    self._end_command("ok")
                else:
                    self._end_command("error", StatusCode.ERROR)
            case StepFinished(record=record):
                step = self._open_step(record.step)
                step.set_attributes(
                    {
                        "autoagent.step.status": record.status.value,
                        "autoagent.command": record.command,
                        "autoagent.step.progress": record.progress,
                    }
                )
                self._end_command("not run")
                step.end()
                self._step = None
            case LoopWarning():
                if self._step is not None:
                    self._step.add_event("loop_warning", {"autoagent.escalated": event.escalated})
            case CommandsWithdrawn():
                if self._run is not None:
                    withdrawn = {"autoagent.commands": event.commands}
                    self._run.add_event("commands_withdrawn", withdrawn)
            case RunEnded():
                self._end_run(event)

    def _start_run(self, event: RunStarted) -> None:
        name = event.profile.name if event.profile else ""
        self._run = self._tracer.start_span(
            f"invoke_agent {name}".strip(),
            context=Context(),
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": name,
                "gen_ai.conversation.id": event.run_id,
                "autoagent.run.id": event.run_id,
                "autoagent.run.resumed": event.resumed,
            },
        )

    def _open_step(self, number: int | None = None) -> Span:
        if self._step is None:
            self._step = self._tracer.start_span("step", context=self._under_run())
        if number is not None:
            self._step.set_attribute("autoagent.step", number)
        return self._step

    def _authorized(self, decision: Decision, command: str) -> None:
        if self._command is None:
            return
        self._command.set_attributes(
            {
                "autoagent.command.decision": decision.kind.value,
                "autoagent.command.decided_by": decision.by.value,
                "autoagent.command.channel": decision.channel.value,
            }
        )
        if decision.by is Actor.HUMAN:  # the gate asked someone: from the proposal to the answer
            self._start_wait("approval", self._proposed_at)
            if self._wait is not None:
                self._wait.set_attribute("autoagent.command.channel", decision.channel.value)
            self._end_wait()
        if not decision.approved:
            self._end_command("not run")

    def _start_wait(self, kind: str, start: int) -> None:
        parent = self._command or self._step
        self._wait = self._tracer.start_span(
            "wait_for_human",
            context=trace.set_span_in_context(parent) if parent else self._under_run(),
            attributes={"autoagent.wait.for": kind},
            start_time=start,
        )

    def _end_wait(self) -> None:
        if self._wait is not None:
            self._wait.end()
            self._wait = None

    def _end_command(self, outcome: str, status: StatusCode = StatusCode.UNSET) -> None:
        self._end_wait()
        if self._command is not None:
            self._command.set_attribute("autoagent.command.exit", outcome)
            self._command.set_status(Status(status))
            self._command.end()
            self._command = None

    def _end_run(self, event: RunEnded) -> None:
        failed = event.cause in {StopCause.ERROR, StopCause.WORKSPACE_GONE}
        status = StatusCode.ERROR if failed else StatusCode.UNSET
        if self._command is not None and event.cause is StopCause.FINISHED:
            self._end_command("ok")
        self._end_step(status)
        if self._run is None:
            return
        spend = event.spend
        self._run.set_attributes(
            {
                "autoagent.run.status": event.status.value,
                "autoagent.run.cause": event.cause.value if event.cause else "",
                "autoagent.run.steps": event.steps,
                "gen_ai.usage.input_tokens": spend.prompt_tokens,
                "gen_ai.usage.output_tokens": spend.completion_tokens,
                "autoagent.cost_usd": spend.cost,
            }
        )
        reason = trim_middle(redact(event.reason), REASON_CHARS) if failed else None
        self._run.set_status(Status(status, reason))
        self._run.end()
        self._run = None

    def _end_step(self, status: StatusCode) -> None:
        """End the open step, and its command, when the run ends in the middle of it."""
        self._end_command("not run", status)
        if self._step is not None:
            self._step.set_status(Status(status))
            self._step.end()
            self._step = None

    def _under_run(self) -> Context:
        return trace.set_span_in_context(self._run) if self._run else Context()

    # Model calls.

    def _model_span(self, seen: CallSeen) -> None:
        record, completion = seen.record, seen.completion
        ended = time.time_ns()
        parent = self._step or self._run
        usage = completion.usage
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self._provider_name,
            "gen_ai.request.model": record.model,
            "gen_ai.response.model": completion.model,
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "autoagent.agent.role": record.role,
            "autoagent.usage.estimated": usage.estimated,
            "autoagent.reply.usable": record.problem is None,
        }
        if completion.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = [completion.finish_reason]
        if seen.cost is not None:
            attributes["autoagent.cost_usd"] = seen.cost
        if self._capture:
            attributes["gen_ai.input.messages"] = _messages(seen.messages)
            attributes["gen_ai.output.messages"] = json.dumps(
                [_message("assistant", completion.text, completion.finish_reason)],
                ensure_ascii=False,
            )
        span = self._tracer.start_span(
            f"chat {record.model}",
            context=trace.set_span_in_context(parent) if parent else Context(),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=ended - int(completion.seconds * 1e9),
        )
        span.end(end_time=ended)


def _message(role: str, text: str, finish_reason: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": redact(text)}]}
    if finish_reason:
        message["finish_reason"] = finish_reason
    return message


def _messages(messages: Sequence[dict[str, str]]) -> str:
    return json.dumps([_message(m["role"], m["content"]) for m in messages], ensure_ascii=False)
