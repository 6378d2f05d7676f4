"""The web, read safely: fetch a page hop by hop, then extract its text and links.

Every URL, including each redirect target, goes through `urlguard.check_url`; the peer the
connection actually reached is checked again before the body is read (DNS can change).
"""

from __future__ import annotations

import codecs
import ipaddress
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

# Imported at start-up, before the memory store loads on its own thread: chromadb imports
# httpx too, and two threads importing one module can meet it half made.
import httpx

from ..base.errors import CommandError, RefusedError
from ..base.text import decode
from .urlguard import address_problem, check_url

USER_AGENT = "Mozilla/5.0 (compatible; autoagent/0.1; +https://github.com/autoagent)"
MAX_REDIRECTS = 5
MAX_LINKS = 200
DEADLINE_FACTOR = 3  # a whole fetch, redirects and body, takes at most 3 x the timeout

_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-yaml",
        "application/yaml",
        "application/ld+json",
        "application/rss+xml",
        "application/atom+xml",
        "application/xhtml+xml",
        "application/csv",
    }
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SNIFFED_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


@dataclass(frozen=True)
class FetchedPage:
    url: str  # the final URL, after redirects
    status: int
    content_type: str  # the media type alone, lower case ("text/html"); "" if none was sent
    text: str
    truncated: bool = False  # the body was longer than max_bytes and was cut there


@dataclass(frozen=True)
class Page:
    title: str
    text: str
    links: list[tuple[str, str]] = field(default_factory=list)  # (link text, absolute URL)


def fetch(
    url: str, *, allow_private: bool, timeout: float, max_bytes: int, proxy: str | None = None
) -> FetchedPage:
    """GET `url`, following at most MAX_REDIRECTS redirects, each one checked before it is followed.

    `timeout` bounds each connect and read; the whole fetch stops after DEADLINE_FACTOR times
    that. Reads at most `max_bytes` of the body (`truncated` then says so), also when the
    deadline cuts a slow body short. Raises RefusedError for forbidden URLs and CommandError
    when the page cannot be fetched or is not text.
    """
    deadline = time.monotonic() + DEADLINE_FACTOR * timeout
    current = _check(url, url, allow_private=allow_private)
    headers = {"User-Agent": USER_AGENT, "Accept": "text/html,text/plain;q=0.9,*/*;q=0.5"}
    try:
        with httpx.Client(
            follow_redirects=False, timeout=timeout, headers=headers, trust_env=False, proxy=proxy
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", current) as response:
                    if proxy is None:
                        _check_peer(response, current, allow_private=allow_private)
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        target = urljoin(current, location.strip())
                        current = _check(target, url, allow_private=allow_private)
                        continue
                    return _read(response, current, max_bytes, deadline)
    except httpx.TimeoutException:
        raise CommandError(f"Could not fetch {url}: no answer within {timeout:g} s.") from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise CommandError(
            f"Could not fetch {url}: {reason} (is the address right, and is there an internet "
            "connection?)"
        ) from None
    raise CommandError(f"Could not fetch {url}: more than {MAX_REDIRECTS} redirects.")


def _check(target: str, url: str, *, allow_private: bool) -> str:
    try:
        return check_url(target, allow_private=allow_private)
    except RefusedError:
        raise
    except CommandError as exc:
        reason = str(exc)
        raise CommandError(f"Could not fetch {url}: {reason[:1].lower()}{reason[1:]}") from None


def _check_peer(response: httpx.Response, url: str, *, allow_private: bool) -> None:
    """Refuse a response from an address check_url would have refused (DNS rebinding)."""
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not peer:
        return
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return
    problem = address_problem(address, allow_private=allow_private)
    if problem:
        raise RefusedError(f"Refused {url!r}: the connection reached {address}, {problem}.")


def _read(response: httpx.Response, url: str, max_bytes: int, deadline: float) -> FetchedPage:
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not _may_be_text(media_type):
        raise CommandError(
            f"{url} is not a web page or text (content type {media_type}); nothing was read."
        )
    body = bytearray()
    truncated = False
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            del body[max_bytes:]
            truncated = True
            break
        if time.monotonic() > deadline:
            truncated = True
            break
    data = bytes(body)
    if media_type in _SNIFFED_TYPES and b"\x00" in data[:4096]:
        raise CommandError(f"{url} is binary content, not a web page or text.")
    charset = response.charset_encoding or _sniff_charset(data, media_type)
    return FetchedPage(
        url=url,
        status=response.status_code,
        content_type=media_type,
        text=_decode(data, charset),
        truncated=truncated,
    )


def _may_be_text(media_type: str) -> bool:
    return (
        media_type.startswith("text/")
        or media_type in _TEXT_TYPES
        or media_type in _SNIFFED_TYPES
        or media_type.endswith(("+json", "+xml"))
    )


def _sniff_charset(data: bytes, media_type: str) -> str | None:
    if media_type not in _HTML_TYPES and media_type not in _SNIFFED_TYPES:
        return None
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def _decode(data: bytes, charset: str | None) -> str:
    if charset:
        try:
            codec = codecs.lookup(charset).name
            if codec not in ("utf-8", "ascii"):
                return data.decode(codec, errors="replace")
        except (LookupError, UnicodeError, ValueError):
            pass  # an unknown or non-text codec (base64, idna...): read it as UTF-8
    return decode(data)


def is_html(page: FetchedPage) -> bool:
    if page.content_type in _HTML_TYPES:
        return True
    return page.content_type in _SNIFFED_TYPES and "<html" in page.text[:2048].lower()


def extract(html: str, url: str) -> Page:
    """The main text of an HTML page, its title and its links."""
    import trafilatura
    from lxml import html as lxml_html
    from lxml.etree import ParserError

    # Plain text, not markdown: trafilatura's markdown escapes `_`, `*` and `~`, which would
    # corrupt identifiers, paths and code in the page.
    text = (
        trafilatura.extract(
            html,
            url=url,
            output_format="txt",
            include_links=False,
            include_tables=True,
            include_comments=False,
            favor_recall=True,
        )
        or ""
    )
    try:
        doc = lxml_html.document_fromstring(html)
    except (ParserError, ValueError):
        return Page(title="", text=text)
    metadata = trafilatura.extract_metadata(doc, default_url=url)
    title = (metadata.title if metadata and metadata.title else "") or (
        doc.findtext(".//title") or ""
    )
    if not text.strip():
        body = doc.find("body")
        text = _squeeze(body.text_content() if body is not None else doc.text_content())
    return Page(title=_squeeze(title), text=text, links=_links(doc, url))


def _links(doc: Any, url: str) -> list[tuple[str, str]]:
    base = url
    base_tag = doc.find(".//base[@href]")
    if base_tag is not None:
        base = urljoin(url, base_tag.get("href", "").strip())
    here = urldefrag(url).url
    links: list[tuple[str, str]] = []
    seen: set[str] = set()
    for anchor in doc.iter("a"):
        href = (anchor.get("href") or "").strip()
        if not href:
            continue
        target = urldefrag(urljoin(base, href)).url
        if urlsplit(target).scheme not in ("http", "https") or target == here or target in seen:
            continue
        seen.add(target)
        links.append((_squeeze(anchor.text_content()) or target, target))
        if len(links) >= MAX_LINKS:
            break
    return links


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def page_from(fetched: FetchedPage) -> Page:
    """Extract HTML; any other text (plain, JSON, XML...) passes through as it is."""
    if is_html(fetched):
        return extract(fetched.text, fetched.url)
    return Page(title="", text=fetched.text)
