"""The model seam: a small protocol, and the client for any OpenAI-compatible endpoint."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ModelError

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


class EndpointError(Exception):
    """A request to the endpoint failed: an HTTP status (None: no answer, or a timeout)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        timeout: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.timeout = timeout
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth the same request again: no answer, busy, rate limited, or a server error."""
        return self.status is None or self.status in (408, 409, 429) or self.status >= 500


MAX_RETRY_WAIT = 8.0  # seconds between retries at most, unless the server asks for up to 60


def retry_wait(attempt: int, retry_after: float | None) -> float:
    """How long to wait before retry number `attempt` (from 0): what the server asked for,
    if it is reasonable, else an exponential backoff with jitter."""
    if retry_after is not None and 0 <= retry_after <= 60:
        return retry_after
    return min(0.5 * 2**attempt, MAX_RETRY_WAIT) * (1 - 0.25 * random.random())


class OpenAIChatModel:
    """ChatModel for OpenAI and compatible servers: their HTTP API, spoken with httpx.

    The `openai` package is not used here: importing it took most of a second (its hundreds
    of typed models), before the first request of every run, for the two calls this needs.
    Like it, this retries what is worth retrying (no answer, 408, 409, 429, 5xx), honours
    Retry-After, and streams replies as server-sent events."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float = 120.0,
        max_retries: int = 4,
        max_reply_tokens: int | None = None,
    ) -> None:
        import httpx

        self._httpx = httpx
        self.base_url = (base_url or "https://api.openai.com/v1").rstrip("/")
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"Authorization": f"Bearer {api_key or 'not-needed'}"},
        )
        self.max_retries = max_retries
        self.max_reply_tokens = max_reply_tokens
        # The response format this endpoint accepted, once known; kept for the run.
        self.format_kind: str | None = None
        # Replies are streamed so the screen can show progress (completion tokens so far).
        self.stream = True
        self.on_progress: Callable[[int], None] | None = None

    def check(self) -> None:
        """Fail fast, before the loop, when the endpoint cannot be reached or refuses us."""
        try:
            self._request("GET", "/models", None, retries=1, timeout=15.0)
        except EndpointError as exc:
            if exc.status == 404:
                return  # some compatible servers have no /models; a chat call will tell
            raise self._explain(exc, model=None) from exc

    def complete(
        self, messages: list[Message], *, model: str, schema: dict[str, Any] | None = None
    ) -> Completion:
        kinds = [self.format_kind] if self.format_kind else list(RESPONSE_FORMATS)
        if schema is None:
            kinds = ["none"]
        for position, kind in enumerate(kinds):
            last = position == len(kinds) - 1
            try:
                try:
                    return self._create(messages, model, kind, schema, probing=not last)
                except EndpointError as exc:
                    if last or not self._busy(exc):
                        raise
                    # Busy, not a refusal: the same format again, with the usual retries.
                    log.debug("endpoint busy while trying response_format %s: %s", kind, exc)
                    return self._create(messages, model, kind, schema, probing=False)
            except EndpointError as exc:
                refused = exc.status in (400, 422, 500) and not self._is_model_missing(exc)
                if last or not refused:
                    raise self._explain(exc, model) from exc
                log.debug("endpoint refused response_format %s (%s); trying the next", kind, exc)
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
        retries = 0 if probing else self.max_retries
        body: dict[str, Any] = {"model": model, "messages": messages}
        fmt = response_format(kind, schema) if schema is not None else None
        if fmt is not None:
            body["response_format"] = fmt
        if self.max_reply_tokens is not None:
            body["max_tokens"] = self.max_reply_tokens
        started = time.monotonic()
        call = self._streamed if self.stream else self._unstreamed
        text, usage, served_by = call(body, retries)
        seconds = time.monotonic() - started
        if self.format_kind != kind and schema is not None:
            self.format_kind = kind
            log.debug("endpoint %s accepts response_format %s", self.base_url, kind)
        return Completion(
            text=text,
            usage=usage or estimate_usage(messages, text),
            model=served_by or model,
            seconds=seconds,
        )

    def _streamed(self, body: dict[str, Any], retries: int) -> tuple[str, Usage | None, str | None]:
        """One streamed completion, reporting progress as it comes. A server that refuses
        streaming, or a stream that breaks, gets the same request unstreamed."""
        streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
        parts: list[str] = []
        usage: Usage | None = None
        served_by: str | None = None
        chars = 0
        try:
            for chunk in self._events(streamed, retries):
                served_by = chunk.get("model") or served_by
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"])
                delta = (chunk.get("choices") or [{}])[0].get("delta") or {}
                if delta.get("content"):
                    parts.append(delta["content"])
                    chars += len(parts[-1])
                    if self.on_progress is not None:
                        self.on_progress(chars // 4)
        except EndpointError as exc:
            if exc.status not in (400, 422) or "stream" not in str(exc).lower():
                raise
            log.debug("endpoint %s refused streaming (%s); not streaming", self.base_url, exc)
            self.stream = False
            return self._unstreamed(body, retries)
        except (self._httpx.HTTPError, ValueError) as exc:
            log.warning("the reply stream from %s broke (%s); asking again", self.base_url, exc)
            return self._unstreamed(body, self.max_retries)
        return "".join(parts), usage, served_by

    def _events(self, body: dict[str, Any], retries: int) -> Iterator[dict[str, Any]]:
        """The chunks of a streamed reply; a failed start is retried like any request."""
        for attempt in range(retries + 1):
            try:
                with self._http.stream("POST", self.base_url + "/chat/completions", json=body) as r:
                    if r.status_code >= 400:
                        r.read()
                        raise self._failure(r)
                    for line in r.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            return
                        yield json.loads(data)
                return
            except EndpointError as exc:
                if attempt == retries or not exc.transient:
                    raise
                time.sleep(retry_wait(attempt, exc.retry_after))
            except self._httpx.TimeoutException as exc:
                if attempt == retries:
                    raise EndpointError(str(exc) or "timed out", timeout=True) from exc
                time.sleep(retry_wait(attempt, None))
            except self._httpx.TransportError as exc:
                if attempt == retries:
                    raise EndpointError(str(exc) or type(exc).__name__) from exc
                time.sleep(retry_wait(attempt, None))

    def _unstreamed(
        self, body: dict[str, Any], retries: int
    ) -> tuple[str, Usage | None, str | None]:
        reply = self._request("POST", "/chat/completions", body, retries=retries)
        choices = reply.get("choices") or []
        text = ((choices[0].get("message") or {}).get("content") or "") if choices else ""
        usage = _usage(reply["usage"]) if reply.get("usage") else None
        return text, usage, reply.get("model")

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        retries: int,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One JSON request, retried when that can help; its JSON reply."""
        httpx = self._httpx
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        for attempt in range(retries + 1):
            try:
                response = self._http.request(method, self.base_url + path, json=body, **extra)
                if response.status_code >= 400:
                    raise self._failure(response)
                reply = response.json()
                if not isinstance(reply, dict):
                    raise EndpointError(f"the endpoint's reply is not a JSON object: {reply!r}")
                return reply
            except EndpointError as exc:
                if attempt == retries or not exc.transient:
                    raise
                time.sleep(retry_wait(attempt, exc.retry_after))
            except httpx.TimeoutException as exc:
                if attempt == retries:
                    raise EndpointError(str(exc) or "timed out", timeout=True) from exc
                time.sleep(retry_wait(attempt, None))
            except (httpx.TransportError, ValueError) as exc:
                if attempt == retries:
                    raise EndpointError(str(exc) or type(exc).__name__) from exc
                time.sleep(retry_wait(attempt, None))
        raise AssertionError("unreachable")

    def _failure(self, response: Any) -> EndpointError:
        text = response.text
        try:
            message = json.loads(text)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = text
        retry_after = None
        if response.headers.get("retry-after-ms"):
            with contextlib.suppress(ValueError):
                retry_after = float(response.headers["retry-after-ms"]) / 1000
        elif response.headers.get("retry-after"):
            with contextlib.suppress(ValueError):
                retry_after = float(response.headers["retry-after"])
        return EndpointError(
            f"Error code: {response.status_code} - {message}",
            status=response.status_code,
            retry_after=retry_after,
        )

    def _busy(self, exc: EndpointError) -> bool:
        """A failure worth the same request again: the endpoint is busy, slow or restarting.
        A plain 500 is not, while probing: it is how some servers refuse a response format."""
        return exc.status is None or exc.status in (408, 409, 429) or exc.status > 500

    def _is_model_missing(self, exc: Exception) -> bool:
        text = str(exc).lower()
        return "model" in text and ("not found" in text or "does not exist" in text)

    def _explain(self, exc: EndpointError, model: str | None) -> ModelError:
        where = self.base_url
        if exc.status == 401:
            msg = f"The endpoint {where} refused the API key (401): set a valid OPENAI_API_KEY."
        elif exc.status == 403:
            msg = f"The endpoint {where} denied access (403): check the key's permissions."
        elif exc.status == 404 or self._is_model_missing(exc):
            msg = (
                f"The endpoint {where} has no model {model!r}: set --model/--fast-model "
                "(AUTOAGENT_MODEL, AUTOAGENT_FAST_MODEL) to a model it serves."
            )
        elif exc.status == 429:
            msg = f"The endpoint {where} kept answering 429 (rate limit or quota) after retries."
        elif exc.timeout:
            msg = f"The endpoint {where} did not answer in time, after retries."
        elif exc.status is None:
            msg = (
                f"Cannot reach the model endpoint {where}: check OPENAI_BASE_URL "
                "and that the server is running."
            )
        else:
            msg = f"The endpoint {where} answered HTTP {exc.status}: {_short(exc)}"
        return ModelError(msg)

    def close(self) -> None:
        self._http.close()


def _usage(data: dict[str, Any]) -> Usage:
    return Usage(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0))


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
