"""The hooks a run uses: those of the user's hooks file, or of the project's once approved."""

from __future__ import annotations

from ..base.settings import Settings
from ..human.hooks_config import Hook, HooksFile, find_hooks_file
from ..tools.mcp_trust import Answer, ProjectApprovals


def configured_hooks(settings: Settings) -> tuple[tuple[Hook, ...], list[str]]:
    """The hooks to run, and notes for the human about a file left out. Raises ConfigError,
    before anything starts, for a hooks file that cannot be used as written (also a
    project's that is not approved: it would be asked about as it is)."""
    file = find_hooks_file(settings.hooks_file)
    if file is None:
        return (), []
    hooks = file.hooks()
    if file.project:
        answer = ProjectApprovals(settings.home).answer(file)
        if answer is None or not answer.approved:
            return (), [left_out(file, answer, settings)] if hooks else []
    return hooks, []


def left_out(file: HooksFile, answer: Answer | None, settings: Settings) -> str:
    """Why a project's hooks file is not used, in one sentence."""
    if answer is not None:
        why = f", as you answered on {answer.date}"
    elif settings.continuous:
        why = ": it was never approved, and a continuous run asks no one"
    else:
        why = ": it was not approved"
    return (
        f"The project's hooks file {file.path} is left out{why} (a run without --continuous "
        f"asks you; AUTOAGENT_HOOKS_FILE={file.path} uses it as your own)."
    )
