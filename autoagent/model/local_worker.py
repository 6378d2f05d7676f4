"""The local model's own process: a GGUF model behind a small OpenAI-compatible HTTP server.

The agent starts it (`local_process.LocalModelProcess`), so a native crash in llama.cpp ends
this process, never the agent. It loads the model, runs one token through it, then serves
`/v1/models` and `/v1/chat/completions` on 127.0.0.1, on a free port it picks itself, and
prints `READY <port>` on stdout. A reply asked for with a JSON schema is held to it by a
grammar (`local_llm.LocalChatModel`). It exits when the agent does, even after `kill -9`.

    python -m autoagent.model.local_worker --model FILE.gguf [--parent-pid PID] ...
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..base.errors import AutoAgentError
from .local_llm import LocalChatModel

PR_SET_PDEATHSIG = 1


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    _die_with_parent(args.parent_pid)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    model = LocalChatModel(
        args.model,
        n_ctx=args.n_ctx,
        max_tokens=args.max_tokens,
        max_string=args.max_string,
        max_items=args.max_items,
        repeat_penalty=args.repeat_penalty,
        n_threads=args.threads,
        seed=args.seed,
        command_first=args.command_first,
    )
    try:
        model.check()
        model.first_token()  # the kernels this CPU will run, tried once before any work
    except AutoAgentError as exc:
        print(f"FAILED {exc}", flush=True)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(model))
    print(f"READY {server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m autoagent.model.local_worker")
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--max-string", type=int, default=1000)
    parser.add_argument("--max-items", type=int, default=16)
    parser.add_argument("--repeat-penalty", type=float, default=1.1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--command-first", action="store_true")
    return parser.parse_args(argv)


def _die_with_parent(parent: int | None) -> None:
    """Exit when the agent goes, however it goes (the kernel's signal, or a watchdog)."""
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the agent went before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _handler(model: LocalChatModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                entry = {"id": model.name, "object": "model", "owned_by": "local"}
                self._send(200, {"object": "list", "data": [entry]})
            else:
                self._error(404, "not found")

        def do_POST(self) -> None:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._error(404, "not found")
                return
            try:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                messages = request["messages"]
            except (ValueError, KeyError, TypeError):
                self._error(400, "the body must be a JSON object with messages")
                return
            if request.get("stream"):
                self._error(400, "stream is not supported by this server")
                return
            try:
                completion = model.complete(
                    messages, model=model.name, schema=_schema_of(request.get("response_format"))
                )
            except AutoAgentError as exc:
                self._error(400, str(exc))
                return
            self._send(
                200,
                {
                    "id": "chatcmpl-local",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": completion.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": completion.text},
                            "finish_reason": completion.finish_reason or "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": completion.usage.prompt_tokens,
                        "completion_tokens": completion.usage.completion_tokens,
                        "total_tokens": completion.usage.total_tokens,
                    },
                },
            )

    return Handler


def _schema_of(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema in an OpenAI `response_format`, in either of its common shapes."""
    if not isinstance(response_format, dict):
        return None
    if isinstance(response_format.get("json_schema"), dict):
        schema = response_format["json_schema"].get("schema")
    else:
        schema = response_format.get("schema")
    return schema if isinstance(schema, dict) else None


if __name__ == "__main__":
    sys.exit(main())
