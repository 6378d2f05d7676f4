"""The console's "rewind to before this step": a confirmation page, then the rewind, with the
rules of the console's other forms. Real files changed by a real run of the CLI."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from autoagent.cli.console import ConsoleServer
from autoagent.model.testing import FakeOpenAIServer, execution_reply
from autoagent.store.journal import RunJournal

from .test_cli_rewind import WIPE_AND_WRITE, make_workspace, one_step_run, run_id, tree_hash
from .test_console import base, session

pytestmark = pytest.mark.slow


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleServer]:
    server = ConsoleServer(tmp_path / "home", "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def rewinds(tmp_path: Path, run: str) -> list[dict[str, object]]:
    lines = (tmp_path / "home/runs" / run / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "Rewound"]


def confirmation(client: httpx.Client, run: str) -> dict[str, str]:
    """The run page's rewind link, followed: the confirmation form's fields."""
    page = client.get(f"/runs/{run}").text
    assert f'href="/runs/{run}/rewind?step=1"' in page
    confirm = client.get(f"/runs/{run}/rewind?step=1")
    assert confirm.status_code == 200
    assert "remove new.txt" in confirm.text and "bring back old.txt" in confirm.text
    fields = dict(re.findall(r'name="(csrf|step|plan)" value="([^"]*)"', confirm.text))
    assert set(fields) == {"csrf", "step", "plan"}
    return fields


def test_the_console_rewinds_a_step_after_confirming_and_refuses_a_cross_site_form(
    tmp_path: Path, server: FakeOpenAIServer, console: ConsoleServer
) -> None:
    ws = tmp_path / "ws"
    make_workspace(ws)
    original = tree_hash(ws)
    one_step_run(tmp_path, server, execution_reply("execute_python_code", code=WIPE_AND_WRITE))
    after_run = tree_hash(ws)
    run = run_id(tmp_path)
    client = session(console)
    fields = confirmation(client, run)
    assert tree_hash(ws) == after_run  # the page changed nothing
    url = f"/runs/{run}/rewind"

    no_cookie = httpx.post(base(console) + url, data=fields)
    no_csrf = client.post(url, data={**fields, "csrf": ""})
    wrong_csrf = client.post(url, data={**fields, "csrf": "0" * 64})
    foreign_origin = client.post(url, data=fields, headers={"Origin": "http://evil.example"})
    foreign_referer = client.post(url, data=fields, headers={"Referer": "http://evil.example/"})
    for response in (no_cookie, no_csrf, wrong_csrf, foreign_origin, foreign_referer):
        assert response.status_code == 403
    stale = client.post(url, data={**fields, "plan": "0" * 64})  # not the plan it showed
    assert stale.status_code == 409 and "nothing was changed" in stale.text
    assert tree_hash(ws) == after_run and rewinds(tmp_path, run) == []

    done = client.post(url, data=fields)
    assert done.status_code == 200 and "Rewound to before step 1" in done.text
    assert tree_hash(ws) == original
    assert [e["to_step"] for e in rewinds(tmp_path, run)] == [1]
    assert "Rewound to before step 1" in client.get(f"/runs/{run}").text  # in the timeline


def test_the_console_refuses_to_rewind_a_live_run(
    tmp_path: Path, server: FakeOpenAIServer, console: ConsoleServer
) -> None:
    ws = tmp_path / "ws"
    make_workspace(ws)
    one_step_run(tmp_path, server, execution_reply("execute_python_code", code=WIPE_AND_WRITE))
    after_run = tree_hash(ws)
    run = run_id(tmp_path)
    client = session(console)
    fields = confirmation(client, run)
    journal = RunJournal.open(tmp_path / "home", run)
    journal.acquire()  # as a process running it holds it
    try:
        page = client.get(f"/runs/{run}/rewind?step=1")
        assert page.status_code == 409 and "is running" in page.text
        posted = client.post(f"/runs/{run}/rewind", data=fields)
        assert posted.status_code == 409 and "is running" in posted.text
        assert 'rewind?step=1"' not in client.get(f"/runs/{run}").text  # no link while live
    finally:
        journal.release()
    assert tree_hash(ws) == after_run and rewinds(tmp_path, run) == []
