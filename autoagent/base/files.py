"""Small durable-file helpers shared by the layers that keep things on disk."""

from __future__ import annotations

import os
from pathlib import Path


def runs_dir(home: Path) -> Path:
    """Where the runs of the data folder `home` live, one folder each."""
    return home / "runs"


def sync_folder(folder: str | Path) -> None:
    """Make a folder's entries (a file created, renamed or linked in it) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
