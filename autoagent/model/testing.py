"""Drive the real loop offline: a local OpenAI-compatible HTTP server with scripted replies.

    with FakeOpenAIServer() as server:
        server.script("execution", execution_reply("write_file", path="a.txt", content="hi"))
        server.script("execution", execution_reply("finish", reason="done"))
        # point OPENAI_BASE_URL at server.base_url and run the agent

Each request is routed to a role (execution, task-creation, prioritization, browse) by its
prompt; each role has a queue of replies. When a queue is empty the server gives a harmless
default (finish, no new tasks, keep the order). A queued `Fault` answers with an HTTP error
instead, to test retries and failures. Every request is kept in `server.requests`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULTS = {
    "execution": None,  # filled in below
    "task-creation": json.dumps({"tasks": []}),
    "prioritization": json.dumps({"order": []}),
    "browse": "No answer.",
}


def execution_reply(command: str, thought: str = "Working on it.", **args: Any) -> str:
    """A well-formed execution-agent reply proposing `command(**args)`."""
    return json.dumps(
        {
            "thoughts": {
                "text": thought,
                "reasoning": f"{command} moves the task forward.",
                "plan": [f"run {command}", "check the result"],
                "criticism": "Keep steps small.",
                "speak": thought,
            },
            "command": {"name": command, "args": args},
        }
    )


DEFAULTS["execution"] = execution_reply("finish", "Nothing left to do.", reason="Script ended.")


STREAM_PIECE = 40  # characters per streamed chunk


@dataclass(frozen=True)
class Fault:
    """An HTTP error reply (429, 500...), optionally after a delay (to cause client timeouts)."""

    status: int
    body: str = '{"error": {"message": "injected fault", "type": "server_error"}}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Slow:
    """A normal reply sent after `delay` seconds."""

    text: str
    delay: float


def role_of(request: dict[str, Any]) -> str:
    first = request.get("messages", [{}])[0].get("content", "")
    for role in ("task-creation", "prioritization"):
        if f"{role} agent" in first:
            return role
    if "execution agent" in first:
        return "execution"
    return "browse"


class FakeOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 serving scripted replies."""

    def __init__(
        self,
        models: tuple[str, ...] = ("gpt-4o-mini",),
        reject_formats: tuple[str, ...] = (),
        refuse_streaming: bool = False,
        served_model: str | None = None,
    ) -> None:
        self.models = models
        # The model name the replies report (default: the one asked for), as a server that
        # serves an alias or another model under the name asked for does.
        self.served_model = served_model
        # response_format types answered with HTTP 500, as some servers do (e.g. "json_schema").
        self.reject_formats = reject_formats
        self.refuse_streaming = refuse_streaming  # answer 400 to stream=true, as some do
        self.requests: list[dict[str, Any]] = []
        # Per chat request: its role, when it arrived and when its reply was sent
        # (time.perf_counter), for benchmarks that tell the server's time from the client's.
        self.served: list[tuple[str, float, float]] = []
        self.connections = 0  # connections clients opened (a client that keeps one: 1)
        self._queues: dict[str, deque[str | Fault | Slow]] = defaultdict(deque)
        self._responders: dict[str, Callable[[dict[str, Any]], str | Fault | Slow]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    def script(self, role: str, *replies: str | Fault | Slow) -> None:
        with self._lock:
            self._queues[role].extend(replies)

    def respond(self, role: str, responder: Callable[[dict[str, Any]], str | Fault | Slow]) -> None:
        """Answer `role`'s requests with `responder(request)` once its script is used up."""
        with self._lock:
            self._responders[role] = responder

    def requests_for(self, role: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if role_of(r) == role]

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, request: dict[str, Any]) -> str | Fault | Slow:
        with self._lock:
            self.requests.append(request)
            if request.get("stream") and self.refuse_streaming:
                return Fault(400, '{"error": {"message": "stream is not supported"}}')
            fmt = (request.get("response_format") or {}).get("type")
            if fmt in self.reject_formats:
                return Fault(500, '{"error": {"message": "unsupported response_format"}}')
            role = role_of(request)
            queue = self._queues[role]
            if queue:
                return queue.popleft()
            if role in self._responders:
                return self._responders[role](request)
            return DEFAULTS[role] or ""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            # Connections are kept open between requests, as by the APIs it stands for.
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.connections += 1
                # Each streamed piece goes at once, as from any HTTP server: without this, a
                # piece waits for the client's delayed acknowledgement of the one before.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def handle(self) -> None:
                # A client that went away (a killed agent) needs no answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    super().handle()

            def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    data = [{"id": m, "object": "model", "owned_by": "test"} for m in server.models]
                    self._send(200, json.dumps({"object": "list", "data": data}))
                else:
                    self._send(404, '{"error": {"message": "not found"}}')

            def do_POST(self) -> None:
                received = time.perf_counter()
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    self._send(404, '{"error": {"message": "not found"}}')
                    return
                self._answer(request)
                with server._lock:
                    server.served.append((role_of(request), received, time.perf_counter()))

            def _answer(self, request: dict[str, Any]) -> None:
                model = request.get("model", "")
                if server.models and model not in server.models:
                    self._send(
                        404,
                        json.dumps(
                            {
                                "error": {
                                    "message": f"The model `{model}` does not exist",
                                    "code": "model_not_found",
                                }
                            }
                        ),
                    )
                    return
                reply = server._next(request)
                if isinstance(reply, Fault):
                    time.sleep(reply.delay)
                    self._send(reply.status, reply.body, reply.headers)
                    return
                if isinstance(reply, Slow):
                    time.sleep(reply.delay)
                    reply = reply.text
                prompt_chars = sum(len(m.get("content", "")) for m in request.get("messages", []))
                usage = {
                    "prompt_tokens": prompt_chars // 4,
                    "completion_tokens": len(reply) // 4,
                    "total_tokens": prompt_chars // 4 + len(reply) // 4,
                }
                if request.get("stream"):
                    self._stream(model, reply, usage, request)
                    return
                body = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": server.served_model or model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
                self._send(200, json.dumps(body))

            def _stream(
                self, model: str, reply: str, usage: dict[str, int], request: dict[str, Any]
            ) -> None:
                """Server-sent events, as the OpenAI API streams: pieces, usage, [DONE]."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def send(data: bytes) -> None:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

                def event(choices: list[dict[str, Any]], **extra: Any) -> None:
                    chunk = {
                        "id": "chatcmpl-test",
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": server.served_model or model,
                        "choices": choices,
                        **extra,
                    }
                    send(f"data: {json.dumps(chunk)}\n\n".encode())

                for start in range(0, max(len(reply), 1), STREAM_PIECE):
                    piece = reply[start : start + STREAM_PIECE]
                    event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
                event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
                if (request.get("stream_options") or {}).get("include_usage"):
                    event([], usage=usage)
                send(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        return Handler


class ScriptedChatModel:
    """A ChatModel at the Python seam: replies from a list, records the messages it saw."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.seen: list[list[dict[str, str]]] = []

    def complete(
        self, messages: list[dict[str, str]], *, model: str, schema: dict[str, Any] | None = None
    ) -> Any:
        from .llm import Completion, estimate_usage

        self.seen.append(messages)
        text = (
            self.replies.pop(0) if self.replies else DEFAULTS[role_of({"messages": messages})] or ""
        )
        return Completion(text, estimate_usage(messages, text), model, 0.0)
