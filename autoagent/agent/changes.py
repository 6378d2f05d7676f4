"""What a run made or changed in its workspace, from the files' sizes and times before and after."""

from __future__ import annotations

import os
from pathlib import Path


def snapshot(root: Path, limit: int = 20_000) -> dict[str, tuple[int, int]]:
    """Size and modification time of the workspace's files (links not followed)."""
    files: dict[str, tuple[int, int]] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for name in names:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            files[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns)
            if len(files) >= limit:
                return files
    return files


def changed_files(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> list[str]:
    return sorted(path for path, stamp in after.items() if before.get(path) != stamp)
