"""Tell the human elsewhere that a run waits for them: a webhook POST for each new request.

The body carries the request and single-use links to approve or deny it in the web console,
so a small bridge can forward it to ntfy, Slack or e-mail. Delivery runs on a thread of its
own, is retried a few times, and is logged; it never stops or slows the run.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..base.redact import redact
from .requests import Request

log = logging.getLogger(__name__)

ATTEMPTS = 4
FIRST_DELAY = 1.0  # seconds before the second attempt; doubled each time
TIMEOUT = 10.0


def notification(request: Request, tokens: dict[str, str], console_url: str) -> dict[str, Any]:
    """The webhook's JSON body for `request`."""
    base = console_url.rstrip("/")
    links = {
        f"{action}_url": f"{base}/link/{request.id}/{action}?token={quote(token)}"
        for action, token in tokens.items()
    }
    return {
        "type": "autoagent.request",
        "id": request.id,
        "kind": request.kind.value,
        "run_id": request.run_id,
        "agent": request.agent,
        "step": request.step,
        "command": request.command,
        "args": request.args,
        "risk": request.risk,
        "question": request.question or None,
        "created": request.created,
        "expires": request.expires,
        "links_expire": request.links_expire,
        "console_url": base,
        **links,
    }


class Notifier:
    """Posts each new request to `url`; failures go to `log_file` and the debug log."""

    def __init__(self, url: str, console_url: str, log_file: Path) -> None:
        self.url = url
        self.console_url = console_url
        self.log_file = log_file

    def __call__(self, request: Request, tokens: dict[str, str]) -> None:
        body = notification(request, tokens, self.console_url)
        thread = threading.Thread(
            target=self._deliver, args=(request.id, body), name="notify", daemon=True
        )
        thread.start()

    def _deliver(self, request_id: str, body: dict[str, Any]) -> None:
        import httpx

        delay = FIRST_DELAY
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = httpx.post(self.url, json=body, timeout=TIMEOUT)
                if response.status_code < 400:
                    self._note(f"request {request_id}: delivered (HTTP {response.status_code})")
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:  # its text may quote the URL, and its secret
                problem = f"{type(exc).__name__}: {redact(str(exc), [self.url])}"
            self._note(f"request {request_id}: attempt {attempt} of {ATTEMPTS} failed ({problem})")
            if attempt < ATTEMPTS:
                time.sleep(delay)
                delay *= 2
        log.warning("the notification of request %s was not delivered", request_id)

    def _note(self, line: str) -> None:
        log.info("notify: %s", line)
        try:
            with self.log_file.open("a", encoding="utf-8") as file:
                file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        except OSError as exc:
            log.warning("cannot write %s: %s", self.log_file, exc)
