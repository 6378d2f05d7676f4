"""`autoagent serve`: a local web console to watch runs and answer their requests.

It reads runs (from AUTOAGENT_HOME, at each request), records answers through inbox.decide,
and rewinds a stopped run's workspace when asked (console_rewind.py); it never runs anything.
Every request needs the secret token printed at start: its first use in a URL sets a cookie
(HttpOnly, SameSite=Strict) and the page is reloaded without it. A POST needs the cookie, a
form field derived from the token (CSRF), and an Origin or Referer, when the browser sends one,
naming this console. The links of a notification (`/link/ID/ACTION?token=...`) are the
exception: their own single-use token authorises them, and a GET only shows what a POST would
decide, since chat apps fetch links to preview them.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from ..base.errors import ConfigError
from ..base.redact import redact
from .console_app import (
    BACK,
    DEFAULT_PORT,
    MAX_BODY,
    SECURITY_HEADERS,
    Console,
    FleetLister,
    Response,
)
from .pages import render

log = logging.getLogger(__name__)


def forbidden() -> Response:
    text = "Forbidden: open the console with the URL `autoagent serve` printed; it holds the token."
    body = render("message.html", title="Forbidden", message=text, back=None, error=True)
    return Response(HTTPStatus.FORBIDDEN, body.encode("utf-8"))


def _cookies(header: str | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in found:
            found[name] = value
    return found


def _form(body: bytes) -> dict[str, str]:
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _handler(console: Console) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "autoagent-console"
        sys_version = ""
        timeout = 30  # seconds a connection may stay idle before it is closed

        def log_message(self, format: str, *args: Any) -> None:
            # The request line holds a link's token, or the console's, in its query.
            log.debug("%s %s", self.address_string(), redact(format % args))

        def do_GET(self) -> None:
            self._respond(self._get)

        def do_HEAD(self) -> None:
            self._respond(self._get, body=False)

        def do_POST(self) -> None:
            self._respond(self._post)

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            """http.server's own errors (a method it does not serve, a bad request line) carry
            the console's security headers too."""
            self._security_headers_due = True
            super().send_error(code, message, explain)

        def end_headers(self) -> None:
            if getattr(self, "_security_headers_due", False):
                self._security_headers_due = False
                for name, value in SECURITY_HEADERS.items():
                    self.send_header(name, value)
            super().end_headers()

        def _respond(self, route: Callable[[], Response], *, body: bool = True) -> None:
            if not console.host_ok(self.headers.get("Host", "")):
                response = Response(
                    HTTPStatus.MISDIRECTED_REQUEST, b"Unknown host.\n", "text/plain"
                )
            else:
                try:
                    response = route()
                except Exception:  # one page failing must not stop the console
                    log.exception("the console failed on %s %s", self.command, redact(self.path))
                    response = Response(
                        HTTPStatus.INTERNAL_SERVER_ERROR, b"The console failed; see its log.\n"
                    )
            self.send_response(response.status)
            headers = {**SECURITY_HEADERS, **response.headers}
            headers["Content-Type"] = response.content_type
            headers["Content-Length"] = str(len(response.body))
            for name, value in headers.items():
                self.send_header(name, value)
            try:
                self.end_headers()
                if body:
                    self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):  # the client left: nothing to say
                log.debug("%s left before the response was sent", self.address_string())

        def _get(self) -> Response:
            url = urlsplit(self.path)
            query = {name: values[0] for name, values in parse_qs(url.query).items()}
            parts = [part for part in url.path.split("/") if part]
            if len(parts) == 3 and parts[0] == "link":
                return console.link_page(parts[1], parts[2], query.get("token", ""))
            if "token" in query:
                if not console.token_ok(query["token"]):
                    return forbidden()
                rest = urlencode({k: v for k, v in query.items() if k != "token"})
                path = url.path if BACK.fullmatch(url.path) else "/"  # stays on this site
                location = path + (f"?{rest}" if rest else "")
                return Response(
                    HTTPStatus.SEE_OTHER,
                    headers={"Location": location, "Set-Cookie": console.session_cookie()},
                )
            if not console.has_session(_cookies(self.headers.get("Cookie"))):
                return forbidden()
            match parts:
                case []:
                    return console.runs_page()
                case ["approvals"]:
                    return console.approvals_page(query)
                case ["approvals", "requests"]:
                    return console.requests_fragment(None)
                case ["runs", run_id]:
                    return console.run_page(run_id, query)
                case ["runs", run_id, "timeline"]:
                    return console.timeline_fragment(run_id, query)
                case ["runs", run_id, "requests"]:
                    return console.requests_fragment(run_id)
                case ["runs", run_id, "rewind"]:
                    return console.rewind_page(run_id, query)
                case ["static", name]:
                    return console.static(name)
            return console.message("Not found", "There is no such page.", HTTPStatus.NOT_FOUND)

        def _post(self) -> Response:
            parts = [part for part in urlsplit(self.path).path.split("/") if part]
            if not console.same_origin(self.headers, self.headers.get("Host", "")):
                return forbidden()
            is_link = len(parts) == 3 and parts[0] == "link"
            # Who may post is checked before the body is read (a link's token is in it).
            if not is_link and not console.has_session(_cookies(self.headers.get("Cookie"))):
                return forbidden()
            length_header = self.headers.get("Content-Length") or "0"
            if not length_header.isdigit():
                return Response(HTTPStatus.BAD_REQUEST, b"Bad Content-Length.\n", "text/plain")
            if int(length_header) > MAX_BODY:
                return Response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"Too large.\n", "text/plain")
            form = _form(self.rfile.read(int(length_header)))
            client = self.client_address[0]
            if is_link:
                return console.link_decide(parts[1], parts[2], form, client)
            if not hmac.compare_digest(form.get("csrf", "").encode(), console.csrf.encode()):
                return forbidden()
            if len(parts) == 2 and parts[0] == "requests":
                return console.decide(parts[1], form, client)
            if len(parts) == 3 and parts[0] == "runs" and parts[2] == "rewind":
                return console.rewind(parts[1], form)
            return console.message("Not found", "There is no such page.", HTTPStatus.NOT_FOUND)

    return Handler


class ConsoleServer(ThreadingHTTPServer):
    """The console, bound; ConfigError when the port is taken."""

    daemon_threads = True
    # Connections waiting to be accepted: at socketserver's 5, a burst of clients (a team's
    # browsers, a live page's viewers) loses its SYNs and waits a second to try again.
    request_queue_size = 128

    def __init__(
        self,
        home: Path,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        rewind_file_limit: int = 50 << 20,
        fleet: FleetLister | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), BaseHTTPRequestHandler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"Port {port} on {host} is in use (another console?): "
                    f"`autoagent serve --port {free_port(host, port)}` is free."
                ) from exc
            raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from exc
        # The rules need the port, known once bound (--port 0).
        bound = int(self.server_address[1])
        self.console = Console(
            home, secrets.token_urlsafe(32), bound, _is_loopback(host), rewind_file_limit, fleet
        )
        self.RequestHandlerClass = _handler(self.console)


def console_url(server: ConsoleServer, host: str) -> str:
    """The address to open, with the token."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{server.console.port}/?token={server.console.token}"


def free_port(host: str, near: int) -> int:
    """A port that is free on `host` now: one of the next few, or one the system picks."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for candidate in [*range(near + 1, min(near + 20, 65536)), 0]:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
