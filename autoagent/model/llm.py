"""The model seam: a small protocol, and the client for any OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..base.errors import ModelError

log = logging.getLogger(__name__)

Message = dict[str, str]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False  # True when the server gave no usage figures

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage
    model: str
    seconds: float
    finish_reason: str | None = None  # as the server said why the reply ended ("stop", "length")


class ChatModel(Protocol):
    """What the agents need from a model: one chat completion at a time."""

    def complete(
        self, messages: list[Message], *, model: str, schema: dict[str, Any] | None = None
    ) -> Completion:
        """Reply to `messages`; `schema` is the JSON schema the reply should follow, if any."""
        ...


def estimate_tokens(text: str) -> int:
    """An offline token estimate (about four characters a token for English and code)."""
    return max(1, (len(text) + 3) // 4)


def estimate_usage(messages: list[Message], reply: str) -> Usage:
    prompt = sum(estimate_tokens(m["content"]) + 4 for m in messages)
    return Usage(prompt, estimate_tokens(reply), estimated=True)


# Ways to ask an OpenAI-compatible server for JSON, best first. Servers differ: llama.cpp's
# accepts a schema inside json_object but answers 500 to json_schema; some accept neither.
RESPONSE_FORMATS = ("json_schema", "json_object_schema", "json_object", "none")


def response_format(kind: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
    if kind == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


class OpenAIChatModel:
    """ChatModel over the `openai` client, for OpenAI and compatible servers."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float = 120.0,
        max_retries: int = 4,
        max_reply_tokens: int | None = None,
    ) -> None:
        import openai  # imported here so `autoagent --help` stays fast

        self._openai = openai
        self.base_url = base_url or "https://api.openai.com/v1"
        self._client = openai.OpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
        )
        self.max_reply_tokens = max_reply_tokens
        # The response format this endpoint accepted, once known; kept for the run.
        self.format_kind: str | None = None
        # Replies are streamed so the screen can show progress (completion tokens so far).
        self.stream = True
        self.on_progress: Callable[[int], None] | None = None
        # A stream cut while it is read: the HTTP library's errors, and what no piece can be.
        self._cut_stream: tuple[type[Exception], ...] = (BrokenStream, *_transport_errors())

    def check(self) -> None:
        """Fail fast, before the loop, when the endpoint cannot be reached or refuses us."""
        try:
            self._client.with_options(max_retries=1, timeout=15).models.list()
        except self._openai.NotFoundError:
            return  # some compatible servers have no /models; a chat call will tell
        except self._openai.APIError as exc:
            raise self._explain(exc, model=None) from exc

    def complete(
        self, messages: list[Message], *, model: str, schema: dict[str, Any] | None = None
    ) -> Completion:
        kinds = [self.format_kind] if self.format_kind else list(RESPONSE_FORMATS)
        if schema is None:
            kinds = ["none"]
        o = self._openai
        for position, kind in enumerate(kinds):
            last = position == len(kinds) - 1
            try:
                try:
                    return self._create(messages, model, kind, schema, probing=not last)
                except o.APIError as exc:
                    if last:
                        raise
                    if self._is_transient(exc):
                        # Busy, not a refusal: the same format again, with the usual retries.
                        log.debug("endpoint busy while trying response_format %s: %s", kind, exc)
                        return self._create(messages, model, kind, schema, probing=False)
                    if getattr(exc, "status_code", None) != 500:
                        raise
                    # Some servers refuse a format with a 500, others fail once: one 500 does
                    # not settle the format for the run; a second one does.
                    log.debug("HTTP 500 while trying response_format %s; asking again", kind)
                    return self._create(messages, model, kind, schema, probing=True)
            except (o.BadRequestError, o.UnprocessableEntityError, o.InternalServerError) as exc:
                refused = exc.status_code in (400, 422, 500) and not self._is_model_missing(exc)
                if last or not refused:
                    raise self._explain(exc, model) from exc
                log.debug("endpoint refused response_format %s (%s); trying the next", kind, exc)
            except o.APIError as exc:
                raise self._explain(exc, model) from exc
        raise AssertionError("unreachable")

    def _create(
        self,
        messages: list[Message],
        model: str,
        kind: str,
        schema: dict[str, Any] | None,
        probing: bool,
    ) -> Completion:
        # While probing a format, a refusal must come back at once, not after retries.
        client = self._client.with_options(max_retries=0) if probing else self._client
        extra: dict[str, Any] = {}
        fmt = response_format(kind, schema) if schema is not None else None
        if fmt is not None:
            extra["response_format"] = fmt
        if self.max_reply_tokens is not None:
            extra["max_tokens"] = self.max_reply_tokens
        started = time.monotonic()
        call = self._streamed if self.stream else self._unstreamed
        text, usage, served_by, finish_reason = call(client, model, messages, extra)
        seconds = time.monotonic() - started
        if self.format_kind != kind and schema is not None:
            self.format_kind = kind
            log.debug("endpoint %s accepts response_format %s", self.base_url, kind)
        return Completion(
            text=text,
            usage=usage or estimate_usage(messages, text),
            model=served_by or model,
            seconds=seconds,
            finish_reason=finish_reason,
        )

    def _streamed(
        self, client: Any, model: str, messages: list[Message], extra: dict[str, Any]
    ) -> tuple[str, Usage | None, str | None, str | None]:
        """One streamed completion, reporting progress as it comes. A server that refuses
        streaming, or a stream that breaks, gets the same request unstreamed.

        The server-sent events are read raw and parsed here: the client's own stream builds
        a pydantic object per piece (most of a call's CPU), and leaves the body unread after
        `[DONE]`, which closes the kept-open connection."""
        o = self._openai
        # The messages and the response format go as they are (`extra_body`): as typed
        # parameters they would be walked against their TypedDicts first, a quarter of the
        # call's CPU, for plain strings and a schema.
        request = client.chat.completions.with_streaming_response.create(
            model=model,
            messages=[],
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"messages": messages, **extra},
        )
        try:
            with request as response:
                return self._read_events(response.iter_lines())
        except (o.BadRequestError, o.UnprocessableEntityError) as exc:
            if "stream" not in str(exc).lower():
                raise
            log.debug("endpoint %s refused streaming (%s); not streaming", self.base_url, exc)
            self.stream = False
            return self._unstreamed(client, model, messages, extra)
        except self._cut_stream as exc:
            log.warning("the reply stream from %s broke (%s); asking again", self.base_url, exc)
            return self._unstreamed(self._client, model, messages, extra)

    def _read_events(
        self, lines: Iterator[str]
    ) -> tuple[str, Usage | None, str | None, str | None]:
        parts: list[str] = []
        usage: Usage | None = None
        served_by: str | None = None
        finish_reason: str | None = None
        chars = 0
        for line in lines:
            if not line.startswith("data:"):
                continue  # event names, comments (keep-alives) and the blank lines between
            data = line[5:].strip()
            if data == "[DONE]":
                continue  # read on to the body's end, so the connection stays open
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise BrokenStream(f"a piece that is not JSON: {data[:80]!r}") from exc
            if not isinstance(chunk, dict):
                raise BrokenStream(f"a piece that is not an object: {data[:80]!r}")
            if chunk.get("error"):
                raise BrokenStream(f"the server sent an error: {str(chunk['error'])[:200]}")
            if isinstance(name := chunk.get("model"), str) and name:
                served_by = name
            if isinstance(counts := chunk.get("usage"), dict):
                usage = Usage(
                    _count(counts.get("prompt_tokens")), _count(counts.get("completion_tokens"))
                )
            choices = chunk.get("choices")
            choice = choices[0] if isinstance(choices, list) and choices else None
            if not isinstance(choice, dict):
                continue
            finish_reason = choice.get("finish_reason") or finish_reason
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                parts.append(content)
                chars += len(content)
                if self.on_progress is not None:
                    self.on_progress(chars // 4)
        return "".join(parts), usage, served_by, finish_reason

    def _unstreamed(
        self, client: Any, model: str, messages: list[Message], extra: dict[str, Any]
    ) -> tuple[str, Usage | None, str | None, str | None]:
        response = client.chat.completions.create(model=model, messages=messages, **extra)
        text = (response.choices[0].message.content or "") if response.choices else ""
        usage = (
            Usage(response.usage.prompt_tokens, response.usage.completion_tokens or 0)
            if response.usage is not None
            else None
        )
        finish_reason = response.choices[0].finish_reason if response.choices else None
        return text, usage, response.model, finish_reason

    def _is_transient(self, exc: Exception) -> bool:
        """A failure worth the same request again: the endpoint is busy, slow or restarting.
        A plain 500 is not, while probing: it is how some servers refuse a response format."""
        o = self._openai
        if isinstance(exc, o.RateLimitError | o.APITimeoutError | o.APIConnectionError):
            return True
        return isinstance(exc, o.APIStatusError) and (
            exc.status_code in (408, 409) or exc.status_code > 500
        )

    def _is_model_missing(self, exc: Exception) -> bool:
        text = str(exc).lower()
        return "model" in text and ("not found" in text or "does not exist" in text)

    def _explain(self, exc: Exception, model: str | None) -> ModelError:
        o = self._openai
        where = self.base_url
        if isinstance(exc, o.AuthenticationError):
            msg = f"The endpoint {where} refused the API key (401): set a valid OPENAI_API_KEY."
        elif isinstance(exc, o.PermissionDeniedError):
            msg = f"The endpoint {where} denied access (403): check the key's permissions."
        elif isinstance(exc, o.NotFoundError) or self._is_model_missing(exc):
            msg = (
                f"The endpoint {where} has no model {model!r}: set --model/--fast-model "
                "(AUTOAGENT_MODEL, AUTOAGENT_FAST_MODEL) to a model it serves."
            )
        elif isinstance(exc, o.RateLimitError):
            msg = f"The endpoint {where} kept answering 429 (rate limit or quota) after retries."
        elif isinstance(exc, o.APITimeoutError):
            msg = f"The endpoint {where} did not answer in time, after retries."
        elif isinstance(exc, o.APIConnectionError):
            msg = (
                f"Cannot reach the model endpoint {where}: check OPENAI_BASE_URL "
                "and that the server is running."
            )
        elif isinstance(exc, o.APIStatusError):
            msg = f"The endpoint {where} answered HTTP {exc.status_code}: {_short(exc)}"
        else:
            msg = f"The model call failed: {_short(exc)}"
        return ModelError(msg)


class BrokenStream(Exception):
    """A streamed reply that cannot be read to its end."""


def _transport_errors() -> tuple[type[Exception], ...]:
    """What the openai client's HTTP library raises when a stream is cut while it is read (a
    raw stream is read past the client's own error handling)."""
    import importlib

    for name in ("httpx2", "httpx"):
        try:
            return (importlib.import_module(name).TransportError,)
        except ImportError:
            continue
    return ()


def _count(value: Any) -> int:
    """A token count from a server's reply: a whole number, or 0 for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible endpoint, for users who prefer them."""

    def __init__(self, *, api_key: str | None, base_url: str | None, model: str) -> None:
        import openai

        self._openai = openai
        self._client = openai.OpenAI(api_key=api_key or "not-needed", base_url=base_url)
        self.model = model
        self.key = "openai-" + "".join(c if c.isalnum() else "-" for c in model)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        try:
            response = self._client.embeddings.create(model=self.model, input=list(texts))
        except self._openai.APIError as exc:
            raise ModelError(f"The embeddings call failed ({self.model}): {_short(exc)}") from exc
        return [item.embedding for item in response.data]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
