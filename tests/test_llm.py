import json
import re
import socket
import threading

import pytest

from autoagent.base.errors import ModelError
from autoagent.model.llm import OpenAIChatModel
from autoagent.model.replies import ExecutionReply, schema_of
from autoagent.model.testing import FakeOpenAIServer, Fault, execution_reply

MESSAGES = [{"role": "user", "content": "hello"}]


def client(server: FakeOpenAIServer, **kwargs: object) -> OpenAIChatModel:
    return OpenAIChatModel(api_key="test", base_url=server.base_url, **kwargs)  # type: ignore[arg-type]


def test_real_client_gets_reply_and_usage(server: FakeOpenAIServer) -> None:
    server.script("browse", "Paris.")
    completion = client(server).complete(MESSAGES, model="gpt-4o-mini")
    assert completion.text == "Paris."
    assert completion.usage.prompt_tokens > 0 and not completion.usage.estimated


def test_falls_back_when_the_endpoint_refuses_json_schema() -> None:
    with FakeOpenAIServer(reject_formats=("json_schema",)) as server:
        server.script(
            "browse", execution_reply("finish", reason="a"), execution_reply("finish", reason="b")
        )
        model = client(server)
        schema = schema_of(ExecutionReply)
        assert "finish" in model.complete(MESSAGES, model="gpt-4o-mini", schema=schema).text
        assert model.format_kind == "json_object_schema"
        model.complete(MESSAGES, model="gpt-4o-mini", schema=schema)
        kinds = [(r.get("response_format") or {}).get("type") for r in server.requests]
        # Tried twice (one 500 may be a hiccup), then remembered for the rest of the run.
        assert kinds == ["json_schema", "json_schema", "json_object", "json_object"]
        assert "schema" in server.requests[2]["response_format"]


def test_retries_429_honouring_retry_after_then_succeeds(server: FakeOpenAIServer) -> None:
    server.script("browse", Fault(429, headers={"Retry-After": "0"}), Fault(500), "ok")
    assert client(server).complete(MESSAGES, model="gpt-4o-mini").text == "ok"
    assert len(server.requests) == 3


def test_unknown_model_fails_fast_saying_what_to_fix(server: FakeOpenAIServer) -> None:
    with pytest.raises(ModelError, match=r"no model 'gpt-9'.*--model"):
        client(server).complete(MESSAGES, model="gpt-9")
    assert len(server.requests) == 0 or len(server.requests) == 1


def test_bad_key_fails_fast(server: FakeOpenAIServer) -> None:
    server.script("browse", Fault(401, '{"error": {"message": "bad key"}}'))
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        client(server).complete(MESSAGES, model="gpt-4o-mini")
    assert len(server.requests) == 1


def test_unreachable_endpoint_is_one_clear_sentence() -> None:
    model = OpenAIChatModel(api_key="x", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(
        ModelError, match=re.escape("Cannot reach the model endpoint http://127.0.0.1:9/v1")
    ):
        model.check()


def test_replies_stream_with_progress_and_usage(server: FakeOpenAIServer) -> None:
    long_reply = "word " * 100
    server.script("browse", long_reply)
    model = client(server)
    progress: list[int] = []
    model.on_progress = progress.append
    completion = model.complete(MESSAGES, model="gpt-4o-mini")
    assert completion.text == long_reply
    assert server.requests[0]["stream"] is True
    assert len(progress) > 5 and progress == sorted(progress)
    assert progress[-1] == len(long_reply) // 4
    assert not completion.usage.estimated
    assert completion.usage.completion_tokens == len(long_reply) // 4


def test_streamed_replies_keep_one_connection_open(server: FakeOpenAIServer) -> None:
    """Each stream is read to its end, so the next call reuses the connection."""
    server.script("browse", "first " * 50, "second " * 50, "third")
    model = client(server)
    texts = [model.complete(MESSAGES, model="gpt-4o-mini").text for _ in range(3)]
    assert texts == ["first " * 50, "second " * 50, "third"]
    assert server.connections == 1


def test_a_server_that_refuses_streaming_is_asked_without_it() -> None:
    with FakeOpenAIServer(refuse_streaming=True) as server:
        server.script("browse", "first", "second")
        model = client(server)
        assert model.complete(MESSAGES, model="gpt-4o-mini").text == "first"
        assert model.complete(MESSAGES, model="gpt-4o-mini").text == "second"
        assert [r.get("stream") for r in server.requests] == [True, None, None]


def test_a_busy_endpoint_while_probing_is_asked_the_same_format_again(
    server: FakeOpenAIServer,
) -> None:
    server.script("browse", Fault(503), execution_reply("finish", reason="a"))
    model = client(server, max_retries=1)
    reply = model.complete(MESSAGES, model="gpt-4o-mini", schema=schema_of(ExecutionReply))
    assert "finish" in reply.text and model.format_kind == "json_schema"
    kinds = [(r.get("response_format") or {}).get("type") for r in server.requests]
    assert kinds == ["json_schema", "json_schema"]


def test_a_stream_that_breaks_mid_reply_is_asked_again_unstreamed() -> None:
    """The first reply starts streaming, then the connection is cut before its end (an
    unfinished chunked body); the same request is sent again without streaming."""
    piece = json.dumps(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "half a rep"}, "finish_reason": None}],
        }
    )
    whole = json.dumps(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "the whole reply"},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode()
    bodies: list[dict[str, object]] = []

    def serve(listener: socket.socket) -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                bodies.append(read_request(conn))
                if bodies[-1].get("stream"):
                    event = f"data: {piece}\n\n".encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n"
                        + f"{len(event):x}\r\n".encode()
                        + event
                        + b"\r\n"
                    )  # and no last chunk: the stream is cut
                else:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(whole)}\r\nConnection: close\r\n\r\n".encode()
                        + whole
                    )

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        thread = threading.Thread(target=serve, args=(listener,), daemon=True)
        thread.start()
        model = OpenAIChatModel(api_key="x", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
        assert model.complete(MESSAGES, model="m").text == "the whole reply"
        thread.join(5)
    assert [b.get("stream") for b in bodies] == [True, None]


def test_streamed_pieces_of_the_wrong_shape_add_nothing_and_break_nothing() -> None:
    """A server's pieces are untrusted: a model name that is not text, a delta that is not an
    object, content that is not text and token counts that are not whole numbers are left
    out; the text of the good pieces is the reply."""
    pieces = [
        {"model": 7, "choices": [{"delta": ["not", "an", "object"]}]},
        {"model": "m", "choices": [{"delta": {"content": 12}}]},
        {"choices": [{"delta": {"content": "the reply"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": "12", "completion_tokens": -3}},
    ]
    events = b"".join(f"data: {json.dumps(p)}\n\n".encode() for p in pieces) + b"data: [DONE]\n\n"

    def serve(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            read_request(conn)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                + f"Content-Length: {len(events)}\r\nConnection: close\r\n\r\n".encode()
                + events
            )

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        thread = threading.Thread(target=serve, args=(listener,), daemon=True)
        thread.start()
        model = OpenAIChatModel(api_key="x", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
        reply = model.complete(MESSAGES, model="m")
        thread.join(5)
    assert reply.text == "the reply"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (0, 0)
    assert reply.model == "m"


def read_request(conn: socket.socket) -> dict[str, object]:
    """The JSON body of the HTTP request `conn` sends."""
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(65536)
    headers, body = head.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: (\d+)", headers).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += conn.recv(65536)
    return json.loads(body)  # type: ignore[no-any-return]
