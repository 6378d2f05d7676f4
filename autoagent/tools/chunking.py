"""Cutting long text into chunks and picking the ones that matter to a question.

Keyword overlap, not embeddings: fast, deterministic, and nothing to download.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not now of off on once only or other our ours out over own same she should
    so some such than that the their theirs them then there these they this those through to
    too under until up very was we were what when where which while who whom why will with
    would you your yours page website site tell find give show please""".split()  # noqa: SIM905
)


def split_chunks(text: str, max_chars: int = 3000) -> list[str]:
    """Split `text` into chunks of at most `max_chars`: on paragraphs, then lines, then words."""
    pieces = _pieces(text.strip(), max_chars)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > max_chars:
            chunks.append(current)
            current = ""
        current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _pieces(text: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            pieces.append(paragraph)
            continue
        for line in paragraph.split("\n"):
            while len(line) > max_chars:
                cut = line.rfind(" ", 0, max_chars)
                cut = cut if cut > max_chars // 2 else max_chars
                pieces.append(line[:cut].strip())
                line = line[cut:].strip()
            if line:
                pieces.append(line)
    return pieces


def keywords(text: str) -> list[str]:
    """The words of `text` worth matching: lower case, no stop words, no one-letter words."""
    return [
        w
        for w in (m.group().lower() for m in _WORD.finditer(text))
        if len(w) > 1 and w not in _STOPWORDS
    ]


def relevant_chunks(chunks: list[str], question: str, limit: int) -> list[str]:
    """The `limit` chunks that best match `question`, in document order.

    A chunk scores, for each distinct keyword of the question it contains, more for rare
    keywords (inverse document frequency) and a little more for repeats. Chunks matching
    nothing are left out; if nothing matches anywhere, the first chunks are returned.
    """
    if len(chunks) <= limit:
        return list(chunks)
    wanted = set(keywords(question))
    counts = [Counter(keywords(chunk)) for chunk in chunks]
    frequency = Counter(word for count in counts for word in wanted if count[word])
    scores = []
    for index, count in enumerate(counts):
        score = sum(
            math.log(1 + len(chunks) / frequency[word]) * (1 + math.log(count[word]))
            for word in wanted
            if count[word]
        )
        scores.append((score, -index))
    best = sorted(range(len(chunks)), key=lambda i: scores[i], reverse=True)[:limit]
    if scores[best[0]][0] > 0:
        best = [i for i in best if scores[i][0] > 0]  # no filler when something matched
    return [chunks[i] for i in sorted(best)]
