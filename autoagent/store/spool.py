"""Memories kept beside the store when a process ends before the store has loaded: a run of a
step or two is over before chromadb and the embedders are ready, and waiting for them only to
write a memory or two costs most of a second. The next process that opens the store writes
them first."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from ..base.files import sync_folder

SPOOL = "unwritten-memories.jsonl"

Item = tuple[str, str, dict[str, Any]]  # id, text, metadata


def keep(folder: Path, items: list[Item]) -> None:
    """Append `items` to the folder's spool, synced: a memory there is as safe as in the store."""
    if not items:
        return
    path = folder / SPOOL
    new = not path.exists()
    lines = "".join(
        json.dumps({"id": i, "text": text, "metadata": meta}, ensure_ascii=False) + "\n"
        for i, text, meta in items
    )
    with open(path, "a", encoding="utf-8") as spool:
        spool.write(lines)
        spool.flush()
        os.fsync(spool.fileno())
    if new:
        sync_folder(folder)


def waiting(folder: Path) -> bool:
    return (folder / SPOOL).exists()


def take(folder: Path) -> list[Item]:
    """The memories kept in the spool, in order (a line torn by a crash is left out: its
    memory is still in its run's checkpoint, which a resume writes)."""
    try:
        lines = (folder / SPOOL).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    items: list[Item] = []
    for line in lines:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            entry = json.loads(line)
            items.append((str(entry["id"]), str(entry["text"]), dict(entry["metadata"])))
    return items


def clear(folder: Path) -> None:
    """Remove the spool once its memories are in the store."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / SPOOL)
