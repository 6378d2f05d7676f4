"""Secrets out of logs: URLs' credentials, query values and fragments, and known token forms.

A webhook's URL, a notification link's token or an API key in a URL would otherwise reach
debug.log, the console's request lines and tracebacks, through our own records and through
libraries' (httpx logs every request's URL).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"

# An absolute URL, up to what cannot be in one unquoted (or closes a quote around it).
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`\\]+")
# The query of a path without its scheme and host: "/link/ID/approve?token=...".
_QUERY = re.compile(r"(?<=[^\s?=&])\?([^\s\"'<>`\\#]+)")
_PAIR = re.compile(r"(?P<key>[^=&;]*)=(?P<value>[^&;]*)")
_TOKENS = [
    (re.compile(r"\b(Bearer|Basic|Token)(\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), r"\1\2***"),
    (re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_-]{16,}"), r"\1-***"),  # OpenAI-style API keys
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "xox-***"),  # Slack tokens
    (re.compile(r"\b(gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}"), r"\1***"),  # GitHub tokens
    # Webhooks whose secret is their path.
    (re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[^\s\"'<>`?#]+"), r"\1***"),
    (re.compile(r"(discord(?:app)?\.com/api/webhooks/)[^\s\"'<>`?#]+"), r"\1***"),
    (re.compile(r"(autoagent_console_\d+=)[^;\s\"']+"), r"\1***"),  # the console's cookie
]


def redact(text: str, secret_urls: Iterable[str] = ()) -> str:
    """`text` with every secret it may hold replaced by ***: each URL's user and password,
    query values and fragment, the path of each of the `secret_urls` (a webhook whose path
    is its secret, as an ntfy topic's is), and tokens of known forms."""
    if "://" in text:
        secret_paths = [_origin_and_path(url) for url in secret_urls]
        text = _URL.sub(lambda match: _redact_url(match.group(0), secret_paths), text)
    if "?" in text:
        text = _QUERY.sub(lambda match: "?" + _redact_query(match.group(1)), text)
    for pattern, replacement in _TOKENS:
        text = pattern.sub(replacement, text)
    return text


def _origin_and_path(url: str) -> tuple[str, str]:
    """A URL's scheme and host (without user and password), and its path without its first
    slash, as `_redact_url` compares them."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower(), parts.path[1:]


def _redact_url(url: str, secret_paths: list[tuple[str, str]]) -> str:
    scheme, _, rest = url.partition("://")
    rest, hash_sign, fragment = rest.partition("#")
    rest, question_mark, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = MASK + "@" + authority.rpartition("@")[2]
    origin = f"{scheme}://{authority.rpartition('@')[2]}".lower()
    if any(origin == o and p and path.startswith(p) for o, p in secret_paths):
        path = MASK
    query = _redact_query(query, bare_too=True) if question_mark else ""
    fragment = MASK if hash_sign and fragment else ""
    return f"{scheme}://{authority}{slash}{path}{question_mark}{query}{hash_sign}{fragment}"


def _redact_query(query: str, *, bare_too: bool = False) -> str:
    """Each `key=value` as `key=***`; a bare item (`?secret`) too when `bare_too`."""
    parts = re.split(r"([&;])", query)
    for index in range(0, len(parts), 2):
        pair = _PAIR.fullmatch(parts[index])
        if pair:
            parts[index] = f"{pair['key']}={MASK}" if pair["value"] else parts[index]
        elif bare_too and parts[index]:
            parts[index] = MASK
    return "".join(parts)


class RedactingFilter(logging.Filter):
    """Rewrites each record a handler is given, its traceback included, through `redact`.
    On a handler it sees every record that reaches it, libraries' too."""

    def __init__(self, secret_urls: Iterable[str] = ()) -> None:
        super().__init__()
        self.secret_urls = [url for url in secret_urls if url]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secret_urls)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secret_urls)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secret_urls)
        return True
