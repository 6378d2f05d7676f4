"""OpenTelemetry traces of a run, when an OTLP endpoint is configured the standard way
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). Off, nothing of
OpenTelemetry is imported by this module and the run pays nothing: spans.py does the work."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base.risk import Risk

if TYPE_CHECKING:
    from ..agent.loop import AgentLoop
    from .spans import RunTracer

# The longest the spans may take to leave at exit: an unreachable collector costs no more.
EXIT_WAIT = 3.0


def start_traces(loop: AgentLoop) -> tuple[RunTracer | None, str | None]:
    """The run's tracer, when traces are on, and a note for the human when they cannot be."""
    settings = loop.settings
    endpoint = settings.traces_endpoint
    if endpoint is None:
        return None, None
    if not endpoint.startswith(("http://", "https://")):
        return None, f"Traces are off: the OTLP endpoint {endpoint} is not an http(s) URL."
    try:
        from .spans import RunTracer
    except ImportError as exc:
        return None, (
            f"Traces are off: they need the otel extra (pip install 'autoagent[otel]'): {exc}."
        )
    registry = loop.registry

    def command_risk(name: str) -> Risk | None:
        return registry.get(name).risk if name in registry else None

    def asks_human(name: str) -> bool:
        return name in registry and registry.get(name).asks_human

    local = settings.llm == "local" or (settings.llm == "auto" and not settings.endpoint_configured)
    tracer = RunTracer(
        endpoint,
        provider_name="llama.cpp" if local else "openai",
        capture_prompts=settings.otel_capture_prompts,
        command_risk=command_risk,
        asks_human=asks_human,
    )
    loop.caller.on_call = tracer.model_call
    return tracer, None
