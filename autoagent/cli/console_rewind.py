"""The console's "rewind to before this step": a page that says what the rewind will change,
and its form, which does it as `autoagent rewind` does (refused while the run is live, recorded
in the run's journal, undoable with `autoagent rewind RUN --undo`).

The form carries the CSRF field (checked by console.py, with the session and the origin) and
the digest of the plan it confirms: if the workspace changed since the page was shown, nothing
is done and the page is shown again."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

from ..agent.rewind import prepare_rewind, preview_rewind
from ..base.errors import JournalError, SnapshotError
from ..store.journal import RunJournal, is_live
from ..store.manifest import summary

if TYPE_CHECKING:
    from .console_app import Console, Response

VERBS = {"added": "bring back", "deleted": "remove", "modified": "restore"}


def rewind_page(console: Console, journal: RunJournal, query: dict[str, str]) -> Response:
    back = f"/runs/{journal.run_id}"
    step = _step(query.get("step", ""))
    if step is None:
        return console.message(
            "Nothing to rewind", "No such step.", HTTPStatus.NOT_FOUND, back=back
        )
    if is_live(journal.run_dir):
        return _live(console, journal)
    try:
        plan = preview_rewind(journal, console.rewind_file_limit, step)
    except (JournalError, SnapshotError) as exc:
        return console.message("Nothing to rewind", str(exc), HTTPStatus.CONFLICT, back=back)
    return console.page(
        "rewind.html",
        title=f"Rewind to before step {step}?",
        run_id=journal.run_id,
        step=step,
        changes=[(VERBS[c.change], c.describe()) for c in plan.changes],
        lost=plan.lost,
        plan=plan.digest,
        csrf=console.csrf,
        back=back,
    )


def rewind(console: Console, journal: RunJournal, form: dict[str, str]) -> Response:
    """The confirmation's POST; the caller checked the session, the origin and CSRF."""
    back = f"/runs/{journal.run_id}"
    step = _step(form.get("step", ""))
    if step is None:
        return console.message("Nothing rewound", "No such step.", HTTPStatus.NOT_FOUND, back=back)
    try:
        prepared = prepare_rewind(journal, console.rewind_file_limit, to_step=step)
    except JournalError:
        return _live(console, journal)
    except SnapshotError as exc:
        return console.message("Nothing rewound", str(exc), HTTPStatus.CONFLICT, back=back)
    if prepared.plan.digest != form.get("plan", ""):
        prepared.cancel()
        return console.message(
            "Nothing rewound",
            "The workspace changed since the page was shown, so the rewind would not do what "
            "it said: nothing was changed. Look at the rewind again.",
            HTTPStatus.CONFLICT,
            back=f"{back}/rewind?step={step}",
        )
    if prepared.plan.empty:
        prepared.cancel()
        return console.message(
            "Nothing to change",
            f"The workspace is already as it was before step {step}.",
            HTTPStatus.OK,
            back=back,
        )
    try:
        event = prepared.apply()
    except SnapshotError as exc:
        return console.message("Rewind stopped", str(exc), HTTPStatus.INTERNAL_SERVER_ERROR)
    said = f"Rewound to before step {step}: {summary(event.changes)}."
    if event.lost:
        said += " Not brought back: " + ", ".join(event.lost) + "."
    said += f" `autoagent rewind {journal.run_id} --undo` undoes it."
    return console.message("Rewound", said, HTTPStatus.OK, back=back)


def _live(console: Console, journal: RunJournal) -> Response:
    return console.message(
        "Nothing rewound",
        f"Run {journal.run_id} is running: stop it before rewinding its workspace.",
        HTTPStatus.CONFLICT,
        back=f"/runs/{journal.run_id}",
    )


def _step(value: str) -> int | None:
    return int(value) if value.isdigit() and 0 < len(value) < 10 and int(value) > 0 else None
