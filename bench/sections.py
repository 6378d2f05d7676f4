"""bench/RESULTS.md is made of sections, each written by its own benchmark, kept by the rest."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).parent / "RESULTS.md"
TITLE = "# Benchmark results\n"


def replace_section(name: str, text: str, path: Path = RESULTS) -> Path:
    """Put `text` in the section `name` of `path`, in place, or at the end if it is new."""
    start, end = f"<!-- section: {name} -->", f"<!-- end: {name} -->"
    block = f"{start}\n{text.strip()}\n{end}"
    old = path.read_text(encoding="utf-8") if path.exists() else TITLE
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else f"{old.rstrip()}\n\n{block}"
    path.write_text(new.rstrip() + "\n", encoding="utf-8")
    return path
