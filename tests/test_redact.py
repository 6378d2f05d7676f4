"""Secrets out of logs: URLs' credentials, query values and fragments, known token forms, in
messages and tracebacks, from any logger."""

from __future__ import annotations

import io
import logging

import pytest

from autoagent.base.redact import RedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'HTTP Request: POST https://bot:pw@h.example/hook?key=abc&n=1#frag "HTTP/1.1 200"',
            'HTTP Request: POST https://***@h.example/hook?key=***&n=***#*** "HTTP/1.1 200"',
        ),
        ("https://h.example/p?bare", "https://h.example/p?***"),
        (
            '127.0.0.1 "GET /link/0123abcd/approve?token=Zx-9_q HTTP/1.1" 500 -',
            '127.0.0.1 "GET /link/0123abcd/approve?token=*** HTTP/1.1" 500 -',
        ),
        ("Authorization: Bearer abcdefghijklmnop", "Authorization: Bearer ***"),
        ("key sk-proj-abcdefghijklmnopqrstu used", "key sk-*** used"),
        ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/services/***"),
        (
            "Cookie: autoagent_console_8765=s3cret; other=1",
            "Cookie: autoagent_console_8765=***; other=1",
        ),
        (
            "plain http://h.example/path and a question? yes",
            "plain http://h.example/path and a question? yes",
        ),
    ],
)
def test_secrets_are_masked_and_the_rest_kept(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_webhooks_path_is_masked_when_it_is_the_secret() -> None:
    secret = ["https://ntfy.sh/my-topic"]
    assert redact("POST https://ntfy.sh/my-topic?x=1", secret) == "POST https://ntfy.sh/***?x=***"
    assert redact("GET https://ntfy.sh/other", secret) == "GET https://ntfy.sh/other"


def test_the_filter_cleans_a_librarys_records_and_their_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    library = logging.getLogger("some.library")
    library.addHandler(handler)
    try:
        try:
            raise ValueError("cannot fetch http://h.example/x?token=t0ps3cret")
        except ValueError:
            library.error("failed on %s", "/link/ab/approve?token=t0ps3cret", exc_info=True)
    finally:
        library.removeHandler(handler)
    logged = stream.getvalue()
    assert "t0ps3cret" not in logged
    assert "failed on /link/ab/approve?token=***" in logged
    assert "ValueError: cannot fetch http://h.example/x?token=***" in logged
