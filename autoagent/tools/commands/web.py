"""Web commands: search, and read a page to answer a question about it.

Everything that comes from the web reaches the model wrapped by `mark_untrusted`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from ...base.errors import AutoAgentError, CommandError
from ...base.risk import Risk
from ...base.text import mark_untrusted, strip_terminal_escapes, trim_middle
from ..chunking import relevant_chunks, split_chunks
from ..search import DDGSBackend, SearchBackend
from ..web import Page, fetch, page_from
from .base import CommandContext, command

OBSERVATION_CHARS = 6000  # what browse_website returns, at most (head and tail kept)
SHORT_PAGE_CHARS = 5000  # a page this short is returned whole, no question answering
CHUNK_CHARS = 3000
CHUNKS_FOR_MODEL = 4
PASSAGE_CHARS = 600  # the grain of the excerpts shown with an answer
ANSWER_CHARS = 2500
EXCERPT_CHARS = 2000
LINKS_SHOWN = 15


def plain_text(text: str) -> str:
    """Web text made safe for the terminal and the model: no escapes, no NUL, plain newlines."""
    return strip_terminal_escapes(text.replace("\r\n", "\n").replace("\r", "\n"))


@command(Risk.LOW, read_only=True)
def web_search(ctx: CommandContext, query: str) -> str:
    """Search the web; returns the top results, each with its title, URL and a snippet.

    Use browse_website on a result's URL to read it.
    """
    query = " ".join(query.split())
    if not query:
        raise CommandError("The search query is empty: say what to search for.")
    backend: SearchBackend | None = ctx.extras.get("search_backend")
    backend = backend or DDGSBackend(proxy=ctx.settings.web_proxy)
    results = backend.search(
        query,
        max_results=ctx.settings.search_results,
        region=ctx.settings.search_region,
        timeout=ctx.settings.web_timeout,
    )
    if not results:
        return f"The web search for {query!r} found nothing. Try other words."
    lines = []
    for number, result in enumerate(results[: ctx.settings.search_results], start=1):
        lines.append(f"{number}. {_one_line(result.title) or '(no title)'}")
        lines.append(f"   {_one_line(result.url)}")
        if snippet := _one_line(result.snippet):
            lines.append(f"   {snippet}")
    return mark_untrusted(f"a web search for {query!r}", "\n".join(lines))


@command(Risk.LOW, read_only=True)
def browse_website(ctx: CommandContext, url: str, question: str) -> str:
    """Read a web page (http or https) and answer a question about it; lists some of its links.

    Long pages are answered from their most relevant parts; the full text is saved to a file.
    """
    settings = ctx.settings
    fetched = fetch(
        url.strip(),
        allow_private=settings.allow_private_urls,
        timeout=settings.web_timeout,
        max_bytes=settings.max_download_bytes,
        proxy=settings.web_proxy,
    )
    if fetched.status >= 400:
        raise CommandError(
            f"{fetched.url} answered HTTP {fetched.status}: the page could not be read."
        )
    page = page_from(replace(fetched, text=plain_text(fetched.text)))
    page = Page(title=plain_text(page.title), text=page.text.strip(), links=page.links)
    saved = save_page(ctx.run_dir, fetched.url, page)

    parts = [f"URL: {fetched.url}"]
    if page.title:
        parts.append(f"Title: {_one_line(page.title)}")
    if fetched.truncated:
        parts.append("(The page was too long or too slow: only its beginning was downloaded.)")
    parts.append("")
    parts.append(_content(ctx, page.text, question, fetched.url) or "(The page has no text.)")
    if page.links:
        parts.append("")
        parts.append(f"Links ({min(len(page.links), LINKS_SHOWN)} of {len(page.links)}):")
        parts.extend(
            f"- {_one_line(text)[:80]}: {_one_line(target)}"
            for text, target in page.links[:LINKS_SHOWN]
        )
    observation = mark_untrusted(fetched.url, trim_middle("\n".join(parts), OBSERVATION_CHARS))
    return f"{observation}\nThe full text of the page ({len(page.text)} characters) is in {saved}."


def _content(ctx: CommandContext, text: str, question: str, url: str) -> str:
    """The whole text if short; else the answer to `question` from the relevant chunks."""
    if len(text) <= SHORT_PAGE_CHARS:
        return text
    heading = f"The parts of the page most relevant to {question!r}:"
    if ctx.ask_about_page is None or not question.strip():
        return f"{heading}\n\n{_excerpt(text, question, OBSERVATION_CHARS - 1500)}"
    picked = relevant_chunks(split_chunks(text, CHUNK_CHARS), question, CHUNKS_FOR_MODEL)
    excerpts = mark_untrusted(url, "\n\n[...]\n\n".join(picked))
    try:
        answer = plain_text(ctx.ask_about_page(url, _one_line(question), excerpts)).strip()
    except AutoAgentError as exc:
        excerpt = _excerpt(text, question, OBSERVATION_CHARS - 1500)
        return f"(The fast model could not answer: {exc}.)\n{heading}\n\n{excerpt}"
    return (
        f"Answer to {question!r}, from the most relevant parts of the page:\n"
        f"{trim_middle(answer, ANSWER_CHARS)}\n\n"
        f"Excerpts:\n{_excerpt(text, question, EXCERPT_CHARS)}"
    )


def _excerpt(text: str, question: str, max_chars: int) -> str:
    """The passages of `text` most relevant to `question`, about `max_chars` in all."""
    passages = split_chunks(text, PASSAGE_CHARS)
    picked = relevant_chunks(passages, question, max(1, max_chars // PASSAGE_CHARS))
    return trim_middle("\n[...]\n".join(picked), max_chars)


def save_page(run_dir: Path, url: str, page: Page) -> Path:
    """Write the page's full text under `run_dir/pages/`; return the file's path."""
    pages = run_dir / "pages"
    pages.mkdir(parents=True, exist_ok=True)
    path = pages / f"{safe_name(url)}.txt"
    links = "\n".join(f"- {text}: {target}" for text, target in page.links)
    content = f"URL: {url}\nTitle: {page.title}\n\n{page.text}\n"
    if links:
        content += f"\nLinks:\n{links}\n"
    path.write_text(content, encoding="utf-8")
    return path


def safe_name(url: str) -> str:
    """A file name for `url`: readable host and path, plus a short hash so names never clash."""
    parts = urlsplit(url)
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{parts.hostname or ''}{parts.path}").strip("._")
    digest = hashlib.sha256(url.encode("utf-8", "replace")).hexdigest()[:10]
    return f"{readable[:80] or 'page'}-{digest}"


def _one_line(text: str) -> str:
    return " ".join(plain_text(text).split())


WEB_COMMANDS = (web_search, browse_website)
