"""The hooks a run uses: those of the user's hooks file, or of the project's once approved."""

from __future__ import annotations

from ..base.settings import Settings
from ..human.hooks_config import Hook, find_hooks_file
from ..tools.mcp_trust import ProjectApprovals, not_used_note


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
            how = (
                "a run without --continuous asks you; "
                f"AUTOAGENT_HOOKS_FILE={file.path} uses it as your own"
            )
            note = not_used_note("hooks file", file, answer, settings.continuous, how)
            return (), [note] if hooks else []
    return hooks, []
