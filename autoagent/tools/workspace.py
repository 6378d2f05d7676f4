"""The workspace boundary: the one folder the file commands may read and write.

Paths from the model are parsed lexically first (no `..` above the root, no `~`, no absolute
path outside the root, no Windows forms, no control characters). Then they are opened one
component at a time, each with O_NOFOLLOW relative to its parent folder's descriptor, so no
symbolic link is ever followed, not even one swapped in between a check and a write.
Links are refused wherever they appear, whether they point inside the workspace or not.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from ..base.errors import CommandError, ConfigError, RefusedError, WorkspaceGone
from ..base.text import decode

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not hang; the file is checked to be regular right after.
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Listed, but not descended into: big, and rarely what the model is looking for.
_NOT_DESCENDED = frozenset({".git", "__pycache__", "node_modules", ".venv", "venv"})


class Workspace:
    """A folder the agent may use. Nothing outside it, nor in `forbidden`, is reachable."""

    def __init__(
        self, root: Path, forbidden: Sequence[Path] = (), *, max_read_bytes: int = 10_000_000
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.max_read_bytes = max_read_bytes
        self._forbidden = tuple(Path(os.path.realpath(folder)) for folder in forbidden)
        for folder in self._forbidden:
            if self.root.is_relative_to(folder):
                raise ConfigError(
                    f"The workspace {self.root} lies inside {folder}, which the agent must not "
                    "reach. Choose a workspace folder outside it."
                )

    def check_present(self) -> None:
        """Raise WorkspaceGone unless the workspace folder is still there."""
        if not os.path.isdir(self.root):
            raise WorkspaceGone(self.root)

    # The operations the commands use. Each takes a path as the model wrote it.

    def read_text(self, path: str) -> str:
        """The file's text, decoded as UTF-8 with replacement (binary never raises)."""
        with self._open_file(path, os.O_RDONLY) as (fd, shown):
            chunks: list[bytes] = []
            total = 0
            while chunk := os.read(fd, 1 << 20):
                total += len(chunk)
                if total > self.max_read_bytes:
                    raise CommandError(
                        f"{shown!r} is larger than {self.max_read_bytes:,} bytes, too large to "
                        "read whole. Read part of it with a program instead."
                    )
                chunks.append(chunk)
        return decode(b"".join(chunks))

    def write_text(self, path: str, content: str, *, overwrite: bool = True) -> None:
        """Write `content` as UTF-8, creating parent folders inside the workspace.

        Atomic: the text goes to a temporary file beside the target, is synced, then renamed
        over it, so a full disk or a crash leaves the old file whole, never half a new one."""
        self._replace(path, content.encode("utf-8", errors="replace"), overwrite=overwrite)

    def append_text(self, path: str, content: str) -> None:
        """Append `content` as UTF-8, creating the file and parent folders if needed.

        Atomic like `write_text`: on failure the file keeps its old content intact."""
        self._replace(path, content.encode("utf-8", errors="replace"), append=True)

    def delete(self, path: str) -> None:
        """Delete a file or an empty folder. Links are refused, not removed."""
        parts = self._parts(path)
        if not parts:
            raise RefusedError("Refused: the workspace folder itself cannot be deleted.")
        with self._folder(parts[:-1], path) as parent:
            info = self._lstat(parent, parts, path)
            try:
                if stat.S_ISDIR(info.st_mode):
                    os.rmdir(parts[-1], dir_fd=parent)
                else:
                    os.unlink(parts[-1], dir_fd=parent)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise CommandError(
                        f"{'/'.join(parts)!r} is a folder that is not empty; "
                        "delete the files in it first."
                    ) from exc
                raise self._failure(exc, parent, parts, path) from exc

    def list_dir(self, directory: str = ".", *, limit: int = 1000) -> list[str]:
        """Up to `limit` paths under `directory`, relative to the root, breadth first.

        Folders end with "/", links with "@" (they are never followed). Folders such as
        .git or node_modules are listed but not descended into.
        """
        start = self._parts(directory)
        entries: list[str] = []
        queue: deque[tuple[str, ...]] = deque([start])
        while queue:
            current = queue.popleft()
            try:
                with self._folder(current, directory) as fd, os.scandir(fd) as found:
                    children = sorted(found, key=lambda entry: entry.name)
            except CommandError:
                if current == start:
                    raise
                continue  # changed while we were listing; skip it
            for entry in children:
                parts = (*current, entry.name)
                if self._is_forbidden(parts):
                    continue
                shown = "/".join(parts)
                if entry.is_symlink():
                    entries.append(shown + "@")
                elif entry.is_dir(follow_symlinks=False):
                    entries.append(shown + "/")
                    if entry.name not in _NOT_DESCENDED:
                        queue.append(parts)
                else:
                    entries.append(shown)
                if len(entries) >= limit:
                    return entries
        return entries

    def resolve(self, path: str) -> Path:
        """The absolute path of an existing file or folder, checked to contain no link."""
        parts = self._parts(path)
        if parts:
            with self._folder(parts[:-1], path) as parent:
                self._lstat(parent, parts, path)
        return self.root.joinpath(*parts)

    def display(self, path: str) -> str:
        """The normalized relative form of `path`, for messages ("." for the root)."""
        return "/".join(self._parts(path)) or "."

    # Parsing and opening.

    def _parts(self, path: str) -> tuple[str, ...]:
        """The components of `path` below the root; RefusedError when it leaves it."""
        shown = repr(path if len(path) <= 200 else path[:200] + "...")
        if "\x00" in path:
            raise RefusedError(f"Refused: {shown} contains a null byte.")
        if _CONTROL.search(path):
            raise RefusedError(f"Refused: {shown} contains control characters.")
        if "\\" in path or _WINDOWS_DRIVE.match(path):
            raise RefusedError(
                f"Refused: {shown} is a Windows-style path. Use a relative path with '/'."
            )
        if path.startswith("~"):
            raise RefusedError(
                f"Refused: {shown} points into a home folder. Use a path relative to the workspace."
            )
        if path.startswith("/"):
            absolute = Path(os.path.normpath(path))
            if not absolute.is_relative_to(self.root):
                raise RefusedError(
                    f"Refused: {shown} is outside the workspace. Use a path relative to it."
                )
            path = str(absolute.relative_to(self.root))
        parts = _normalize((), path)
        if parts is None:
            raise RefusedError(f"Refused: {shown} is outside the workspace.")
        if self._is_forbidden(parts):
            raise RefusedError(f"Refused: {shown} is in the agent's own data folder, off limits.")
        return parts

    def _is_forbidden(self, parts: Sequence[str]) -> bool:
        full = self.root.joinpath(*parts)
        return any(full.is_relative_to(folder) for folder in self._forbidden)

    @contextmanager
    def _folder(self, parts: Sequence[str], asked: str, *, create: bool = False) -> Iterator[int]:
        """A descriptor for root/parts, reached without following any link."""
        try:
            fd = os.open(self.root, _DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise WorkspaceGone(self.root) from exc
        try:
            for depth, name in enumerate(parts, start=1):
                try:
                    child = _open_folder(fd, name, create)
                except OSError as exc:
                    raise self._failure(exc, fd, parts[:depth], asked) from exc
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def _open_file(self, path: str, flags: int) -> Iterator[tuple[int, str]]:
        """A descriptor for a regular file with a single name, and its display form."""
        parts = self._parts(path)
        if not parts:
            raise CommandError("Give a file path, not the workspace folder itself.")
        shown = "/".join(parts)
        create = bool(flags & os.O_CREAT)
        with self._folder(parts[:-1], path, create=create) as parent:
            try:
                fd = os.open(parts[-1], flags | _FILE_FLAGS, 0o666, dir_fd=parent)
            except OSError as exc:
                raise self._failure(exc, parent, parts, path) from exc
            try:
                info = os.fstat(fd)
                _check_file(info, shown)
                os.set_blocking(fd, True)
                yield fd, shown
            finally:
                os.close(fd)

    def _replace(
        self, path: str, data: bytes, *, overwrite: bool = True, append: bool = False
    ) -> None:
        """Put `data` (after the old content when appending) in place of the file, atomically."""
        parts = self._parts(path)
        if not parts:
            raise CommandError("Give a file path, not the workspace folder itself.")
        shown, name = "/".join(parts), parts[-1]
        with self._folder(parts[:-1], path, create=True) as parent:
            old, mode = self._current(parent, parts, path, overwrite=overwrite, read=append)
            temp = f".{name[:80]}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(temp, _TEMP_FLAGS, 0o666, dir_fd=parent)
            except OSError as exc:
                raise CommandError(f"Could not write {shown!r}: {exc.strerror}.") from exc
            try:
                try:
                    if mode is not None:
                        os.fchmod(fd, mode)
                    _write_all(fd, old + data if old else data)
                    os.fsync(fd)
                except OSError as exc:
                    raise CommandError(f"Could not write {shown!r}: {exc.strerror}.") from exc
                finally:
                    os.close(fd)
                try:
                    if overwrite:
                        os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
                    else:  # a new name only: linking fails if the file appeared meanwhile
                        os.link(
                            temp, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False
                        )
                except OSError as exc:
                    raise self._failure(exc, parent, parts, path) from exc
            finally:
                with suppress(OSError):
                    os.unlink(temp, dir_fd=parent)
            with suppress(OSError):
                os.fsync(parent)  # the rename itself survives a power cut

    def _current(
        self, parent: int, parts: Sequence[str], asked: str, *, overwrite: bool, read: bool
    ) -> tuple[bytes, int | None]:
        """The content (when `read`) and mode of the file about to be replaced, checked."""
        shown = "/".join(parts)
        try:
            fd = os.open(parts[-1], os.O_RDONLY | _FILE_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            return b"", None
        except OSError as exc:
            raise self._failure(exc, parent, parts, asked) from exc
        try:
            info = os.fstat(fd)
            _check_file(info, shown)
            if not overwrite:
                raise CommandError(f"{shown!r} already exists.")
            if not read:
                return b"", stat.S_IMODE(info.st_mode)
            os.set_blocking(fd, True)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks), stat.S_IMODE(info.st_mode)
        finally:
            os.close(fd)

    def _lstat(self, parent: int, parts: Sequence[str], asked: str) -> os.stat_result:
        """Stat the last component without following it; links are refused."""
        try:
            info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise self._failure(exc, parent, parts, asked) from exc
        if stat.S_ISLNK(info.st_mode):
            raise self._link_refusal(parent, parts, asked)
        return info

    def _failure(self, exc: OSError, parent: int, parts: Sequence[str], asked: str) -> CommandError:
        """Turn an OSError on root/parts into an observation the model can act on."""
        with suppress(OSError):
            if stat.S_ISLNK(os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode):
                return self._link_refusal(parent, parts, asked)
        where = "/".join(parts)
        messages = {
            errno.ENOENT: f"No such file or folder: {where!r}.",
            errno.ENOTDIR: f"{where!r} is not a folder.",
            errno.EISDIR: f"{where!r} is a folder, not a file.",
            errno.EEXIST: f"{where!r} already exists.",
        }
        fallback = f"Could not use {where!r}: {exc.strerror}."
        return CommandError(messages.get(exc.errno or 0, fallback))

    def _link_refusal(self, parent: int, parts: Sequence[str], asked: str) -> RefusedError:
        where = "/".join(parts)
        hint = "it points outside the workspace"
        with suppress(OSError):
            target = os.readlink(parts[-1], dir_fd=parent)
            if target.startswith("/"):
                absolute = Path(os.path.normpath(target))
                inside = (
                    absolute.relative_to(self.root).parts
                    if absolute.is_relative_to(self.root)
                    else None
                )
            else:
                inside = _normalize(tuple(parts[:-1]), target)
            if inside is not None and not self._is_forbidden(inside):
                hint = f"it points to {'/'.join(inside) or '.'!r}; use that path instead"
        return RefusedError(
            f"Refused: {asked!r} goes through the symbolic link {where!r}, and the workspace "
            f"never follows links ({hint})."
        )


def _normalize(base: tuple[str, ...], path: str) -> tuple[str, ...] | None:
    """Join `path` to `base` lexically; None if `..` climbs above the root."""
    parts = list(base)
    for name in path.split("/"):
        if name in ("", "."):
            continue
        if name == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(name)
    return tuple(parts)


def _open_folder(parent: int, name: str, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise
        with suppress(FileExistsError):  # a race or a dangling link: the open below decides
            os.mkdir(name, dir_fd=parent)
        return os.open(name, _DIR_FLAGS, dir_fd=parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:  # a full disk, a file too large, a quota
        raise CommandError(f"Could not write the file: {exc.strerror}.") from exc


def _check_file(info: os.stat_result, shown: str) -> None:
    """A file the workspace may open: a regular file with one name (another name for the same
    file may lie outside the workspace)."""
    if stat.S_ISDIR(info.st_mode):
        raise CommandError(f"{shown!r} is a folder, not a file.")
    if not stat.S_ISREG(info.st_mode):
        raise RefusedError(f"Refused: {shown!r} is not a regular file.")
    if info.st_nlink > 1:
        raise RefusedError(f"Refused: {shown!r} has several hard links.")
