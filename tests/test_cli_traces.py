"""OpenTelemetry traces: the CLI against a real OTLP/HTTP receiver the test starts, its requests
decoded with opentelemetry-proto; and a collector that refuses or hangs costs the run nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, PROMPT, cli_env, finish, spawn

pytestmark = pytest.mark.slow


class Receiver:
    """An OTLP/HTTP traces receiver on 127.0.0.1: every span it was sent, decoded."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            receiver.spans += [_span(span) for span in scope.spans]
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def named(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [span for span in self.spans if span["name"] == name]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _span(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "id": span.span_id.hex(),
        "parent": span.parent_span_id.hex(),
        "start": span.start_time_unix_nano,
        "end": span.end_time_unix_nano,
        "attributes": {a.key: _value(a.value) for a in span.attributes},
    }


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    collector = Receiver()
    yield collector
    collector.http.shutdown()


def write(name: str, content: str) -> str:
    return execution_reply("write_file", f"I will write {name}.", path=name, content=content)


def done() -> str:
    return execution_reply("finish", "Done.", reason="All goals met.")


def test_a_run_sends_its_steps_model_calls_commands_and_waits_as_spans(
    tmp_path: Path, server: FakeOpenAIServer, receiver: Receiver
) -> None:
    server.script("execution", write("hello.txt", "secret-content-42"), done())
    server.script("task-creation", json.dumps({"tasks": ["Check hello.txt"]}))
    child = spawn(
        tmp_path,
        server,
        "run",
        *PROFILE,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        AUTOAGENT_PRICES='{"gpt-4o-mini": [1.0, 4.0]}',  # priced, for the cost
    )
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact("Run finished:")
    assert finish(child) == 0

    [run] = receiver.named("invoke_agent Scout")
    assert run["parent"] == ""
    assert run["attributes"]["autoagent.run.status"] == "finished"
    assert run["attributes"]["gen_ai.usage.input_tokens"] > 0
    steps = {span["attributes"]["autoagent.step"]: span for span in receiver.named("step")}
    assert sorted(steps) == [1, 2]
    assert all(step["parent"] == run["id"] for step in steps.values())

    calls = receiver.named("chat gpt-4o-mini")
    roles = [call["attributes"]["autoagent.agent.role"] for call in calls]
    assert sorted(roles) == ["execution", "execution", "task-creation"]
    for call in calls:
        attributes = call["attributes"]
        assert call["parent"] in {step["id"] for step in steps.values()}
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert attributes["gen_ai.usage.input_tokens"] > 0
        assert attributes["gen_ai.usage.output_tokens"] > 0
        assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
        assert attributes["autoagent.cost_usd"] > 0
        assert call["start"] <= call["end"]

    [written] = receiver.named("execute_tool write_file")
    assert written["parent"] == steps[1]["id"]
    assert (
        written["attributes"]
        | {
            "autoagent.command.risk": "medium",
            "autoagent.command.decision": "approve",
            "autoagent.command.channel": "terminal",
            "autoagent.command.exit": "ok",
        }
        == written["attributes"]
    )
    [finished] = receiver.named("execute_tool finish")
    assert finished["parent"] == steps[2]["id"]
    assert finished["attributes"]["autoagent.command.exit"] == "ok"
    waits = receiver.named("wait_for_human")
    assert {wait["parent"] for wait in waits} == {written["id"], finished["id"]}
    assert all(wait["attributes"]["autoagent.wait.for"] == "approval" for wait in waits)

    # No prompt, reply or argument text unless prompt capture is asked for.
    sent = json.dumps(receiver.spans)
    assert "secret-content-42" not in sent and "careful test agent" not in sent


def test_prompt_capture_puts_the_messages_in_the_model_spans(
    tmp_path: Path, server: FakeOpenAIServer, receiver: Receiver
) -> None:
    server.script("execution", done())
    child = spawn(
        tmp_path,
        server,
        "run",
        *PROFILE,
        "--continuous",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint + "/v1/traces",
        AUTOAGENT_OTEL_CAPTURE_PROMPTS="1",
    )
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    [call] = receiver.named("chat gpt-4o-mini")
    sent = json.loads(call["attributes"]["gen_ai.input.messages"])
    assert sent[0]["role"] == "system"
    assert "careful test agent" in sent[0]["parts"][0]["content"]
    [reply] = json.loads(call["attributes"]["gen_ai.output.messages"])
    assert '"finish"' in reply["parts"][0]["content"] and reply["finish_reason"] == "stop"


def _run_continuous(tmp_path: Path, server: FakeOpenAIServer, **env: str) -> str:
    """A whole continuous run, not in a terminal, each import timed: what it wrote."""
    server.script("execution", write("a.txt", "hi"), done())
    tmp_path.mkdir(exist_ok=True)
    finished = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "autoagent", "run", *PROFILE, "-c"],
        cwd=tmp_path,
        env=cli_env(tmp_path, server, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert (tmp_path / "ws" / "a.txt").read_text() == "hi"
    return finished.stdout + finished.stderr


def test_without_an_endpoint_nothing_of_the_exporter_is_imported(
    tmp_path: Path, server: FakeOpenAIServer, receiver: Receiver
) -> None:
    off = _run_continuous(tmp_path / "off", server)
    assert "Run finished" in off
    # chromadb imports the OpenTelemetry SDK for itself; the exporter and spans are ours.
    assert "opentelemetry.exporter.otlp.proto.http" not in off
    assert "autoagent.cli.spans" not in off
    on = _run_continuous(tmp_path / "on", server, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    assert "opentelemetry.exporter.otlp.proto.http" in on and "autoagent.cli.spans" in on
    assert receiver.named("execute_tool write_file")


@pytest.mark.parametrize("collector", ["refuses", "hangs"])
def test_a_collector_that_refuses_or_hangs_neither_stops_the_run_nor_holds_its_exit(
    tmp_path: Path, server: FakeOpenAIServer, collector: str
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if collector == "hangs":
        listener.listen(16)  # connections are taken, and never answered
    else:
        listener.close()  # nothing listens: connections are refused
    server.script("execution", write("a.txt", "hi"), done())
    try:
        child = spawn(
            tmp_path,
            server,
            "run",
            *PROFILE,
            "-c",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        )
        child.expect_exact("Run finished:")
        ended = time.monotonic()
        child.expect_exact(f"127.0.0.1:{port}/v1/traces")  # said once, at the end
        assert finish(child) == 0
        left = time.monotonic() - ended
    finally:
        listener.close()
    assert left < 10, f"the CLI left {left:.1f} s after the run ended"
    assert (tmp_path / "ws" / "a.txt").read_text() == "hi"
    assert "Traceback" not in (child.before or "")
