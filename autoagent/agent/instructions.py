"""The project's instructions: AGENTS.md in the folder a run starts in and at its workspace root.

They reach the execution agent as the project's own instructions, within a cap in bytes; a file
that cannot be read is said in one sentence and left out, and the run goes on.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import not_utf8
from ..base.text import mark_instructions

FILE_NAME = "AGENTS.md"
MAX_BYTES = 32 * 1024  # in all, whatever the prompt budget allows


@dataclass(frozen=True)
class InstructionFile:
    path: Path
    text: str
    size: int  # of the file, in bytes
    cut: bool  # only its start is used: the cap was reached


@dataclass(frozen=True)
class ProjectInstructions:
    files: list[InstructionFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one sentence per file left out
    cap: int = MAX_BYTES

    def prompt_text(self) -> str:
        """The instructions as the prompt shows them: each file marked with where it is from."""
        return "\n".join(mark_instructions(str(f.path), f.text) for f in self.files)

    def digest(self) -> str | None:
        """What the files said, in short, to tell on resume whether they changed."""
        if not self.files:
            return None
        joined = "\0".join(f"{f.path}\0{f.text}" for f in self.files)
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def notes(self) -> list[str]:
        """For the human at the start: which files were read, the cap, and what went wrong."""
        notes = list(self.problems)
        if self.files:
            read = ", ".join(f"{f.path} ({f.size:,} bytes)" for f in self.files)
            why = "" if self.cap >= MAX_BYTES else " (a quarter of AUTOAGENT_PROMPT_TOKENS)"
            notes.append(
                f"Project instructions read from {read}; at most {self.cap:,} bytes are used "
                f"in all{why}."
            )
        for f in self.files:
            if f.cut:
                used = len(f.text.encode())
                notes.append(
                    f"{f.path} is cut at the cap of {self.cap:,} bytes: only its first "
                    f"{used:,} bytes reach the agent."
                )
        return notes


def instruction_cap(prompt_tokens: int) -> int:
    """The bytes AGENTS.md files may take in all: 32 KiB, or a quarter of the prompt budget
    (about four bytes a token) when that is less, so the system prompt keeps room for the rest."""
    return min(MAX_BYTES, prompt_tokens)


def read_instructions(
    folders: Sequence[Path], cap: int, trusted: Sequence[Path] = ()
) -> ProjectInstructions:
    """AGENTS.md of each folder (each once, in order), within `cap` bytes in all.

    A symbolic link is followed only in a `trusted` folder (the one the run starts in): the
    agent itself may have made a link in its workspace."""
    files: list[InstructionFile] = []
    problems: list[str] = []
    left = cap
    seen: set[Path] = set()
    trusted_folders = {folder.resolve() for folder in trusted}
    for folder in folders:
        folder = folder.resolve()
        if folder in seen:
            continue
        seen.add(folder)
        path = folder / FILE_NAME
        if left <= 0 and path.exists():
            problems.append(
                f"{path} is left out: the AGENTS.md before it took the whole cap of {cap:,} bytes."
            )
            continue
        read = _read(path, left, follow=folder in trusted_folders)
        if isinstance(read, str):
            problems.append(read)
        elif read is not None:
            files.append(read)
            left -= len(read.text.encode())
    return ProjectInstructions(files, problems, cap)


def _read(path: Path, limit: int, *, follow: bool) -> InstructionFile | str | None:
    """The file's text up to `limit` bytes, None when there is none, or why it is left out."""
    left_out = "it is left out and the run goes on without it"
    try:
        info = path.stat() if follow else path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror}): {left_out}."
    if path.is_symlink() and not follow:
        return f"{path} is a symbolic link, which is not followed in the workspace: {left_out}."
    if path.is_dir():
        return f"{path} is a folder, not a file: {left_out}."
    if not path.is_file():
        return f"{path} is not a regular file: {left_out}."
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as stream:
            data = stream.read(limit + 1)
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror}): {left_out}."
    cut = len(data) > limit
    data = data[:limit]
    try:
        # A cut may fall inside a character: only the bytes before it count then.
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=not cut)
    except UnicodeDecodeError as exc:
        return f"{not_utf8(path, exc)[:-1]}; {left_out}."
    return InstructionFile(path, text, info.st_size, cut)
