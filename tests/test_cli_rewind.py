"""Every step's changes recorded, diffed and undone: the real CLI, real files, the test server."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, PROMPT, finish, spawn

pytestmark = pytest.mark.slow

WIPE_AND_WRITE = """
import os, shutil
for name in os.listdir('.'):
    if os.path.isdir(name) and not os.path.islink(name):
        shutil.rmtree(name)
    else:
        os.remove(name)
open('new.txt', 'w').write('fresh')
os.makedirs('made/here')
open('made/here/z.bin', 'wb').write(bytes(range(256)))
os.chmod('new.txt', 0o600)
print('wiped')
"""


def tree_hash(root: Path) -> str:
    """Every path under `root` with its kind, mode, and content or link target."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(folder, name)
            info = path.lstat()
            line = f"{path.relative_to(root)} {stat.S_IFMT(info.st_mode)} {info.st_mode & 0o7777:o}"
            if path.is_symlink():
                line += " -> " + os.readlink(path)
            elif path.is_file():
                line += " " + hashlib.sha256(path.read_bytes()).hexdigest()
            digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def make_workspace(ws: Path) -> None:
    (ws / "sub" / "deep").mkdir(parents=True)
    (ws / "empty").mkdir()
    (ws / "old.txt").write_text("old words\n")
    (ws / "sub" / "notes.md").write_text("# Notes\nline two\n")
    (ws / "sub" / "deep" / "data.bin").write_bytes(b"\x00\x01binary" * 100)
    (ws / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (ws / "run.sh").chmod(0o755)
    (ws / "sub" / "notes.md").chmod(0o640)
    (ws / "sub" / "deep").chmod(0o750)
    os.symlink("old.txt", ws / "link")


def run_id(tmp_path: Path) -> str:
    return next((tmp_path / "home" / "runs").iterdir()).name


def one_step_run(tmp_path: Path, server: FakeOpenAIServer, reply: str, **env: str) -> str:
    """Run one approved step and finish; the screen's change line is returned."""
    server.script("execution", reply, execution_reply("finish", reason="Done."))
    child = spawn(tmp_path, server, "run", *PROFILE, **env)
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact("RESULT (")
    child.expect(r"Changed: ([^\r\n]*)")
    changed = child.match.group(1)
    child.expect_exact(PROMPT)
    child.sendline("y")
    assert finish(child) == 0
    return changed


def test_a_python_snippet_that_wipes_the_workspace_is_rewound_exactly_and_back_again(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    ws = tmp_path / "ws"
    make_workspace(ws)
    original = tree_hash(ws)
    changed = one_step_run(
        tmp_path, server, execution_reply("execute_python_code", code=WIPE_AND_WRITE)
    )
    assert "old.txt (deleted)" in changed and "new.txt (+5 B)" in changed
    assert not (ws / "old.txt").exists()
    after_run = tree_hash(ws)
    run = run_id(tmp_path)

    child = spawn(tmp_path, None, "rewind", run, "--to-step", "1")
    child.expect_exact("will:")
    child.expect_exact("remove new.txt")
    child.expect_exact("bring back old.txt")
    child.expect_exact("Rewind?")
    child.sendline("y")
    child.expect_exact("Rewound:")
    assert finish(child) == 0
    assert tree_hash(ws) == original

    # A rewind of the rewind: the workspace as the run left it.
    child = spawn(tmp_path, None, "rewind", run, "--undo", "--yes")
    child.expect_exact("Rewound:")
    assert finish(child) == 0
    assert tree_hash(ws) == after_run
    assert (ws / "new.txt").read_text() == "fresh"

    events = [json.loads(line) for line in (tmp_path / "home/runs" / run / "events.jsonl").open()]
    rewound = [e for e in events if e["event"] == "Rewound"]
    assert [(e["to_step"], e["undo_of"]) for e in rewound] == [(1, None), (None, 1)]
    child = spawn(tmp_path, None, "show", run)
    child.expect_exact("Changed: ")
    child.expect_exact("Rewound to before step 1: ")
    child.expect_exact("Rewind 1 undone: ")
    assert finish(child) == 0


def test_a_shell_line_with_mv_rm_and_a_symlink_is_rewound_and_diffed(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    ws = tmp_path / "ws"
    make_workspace(ws)
    original = tree_hash(ws)
    line = (
        "mv old.txt moved.txt && rm -rf sub && ln -s moved.txt pointer && "
        "printf 'new words\\n' >> run.sh && chmod 700 run.sh"
    )
    changed = one_step_run(
        tmp_path,
        server,
        execution_reply("execute_shell", command_line=line),
        AUTOAGENT_SHELL_ENABLED="1",
    )
    assert "sub/ (deleted)" in changed and "pointer -> moved.txt (link)" in changed
    run = run_id(tmp_path)

    child = spawn(tmp_path, None, "diff", run, "--step", "1")
    child.expect_exact("+++ b/moved.txt")
    child.expect_exact("+old words")
    child.expect_exact("--- a/old.txt")
    child.expect_exact("-old words")
    child.expect_exact("mode 755 -> 700: run.sh")
    child.expect_exact("+new words")
    child.expect_exact("deleted: sub/deep/data.bin (deleted); binary")
    assert finish(child) == 0

    child = spawn(tmp_path, None, "rewind", run, "--to-step", "1", "--yes")
    child.expect_exact("Rewound:")
    assert finish(child) == 0
    assert tree_hash(ws) == original
    assert os.readlink(ws / "link") == "old.txt"


def test_rewind_refuses_while_the_run_is_live(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", execution_reply("write_file", path="a.txt", content="one"))
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact(PROMPT)  # the run holds its lock while it asks
    other = spawn(tmp_path, None, "rewind", run_id(tmp_path), "--to-step", "1", "--yes")
    other.expect_exact("is running: stop it before rewinding")
    assert finish(other) == 1
    child.sendline("n")
    assert finish(child) == 7  # a human's stop


def test_resume_from_a_step_tells_the_agent_what_was_undone(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script(
        "execution",
        execution_reply("write_file", path="a.txt", content="one"),
        execution_reply("write_file", path="b.txt", content="wrong"),
        execution_reply("write_file", path="c.txt", content="three"),
        execution_reply("finish", reason="Done."),
    )
    child = spawn(tmp_path, server, "run", *PROFILE)
    for _ in range(2):
        child.expect_exact(PROMPT)
        child.sendline("y")
    child.expect_exact(PROMPT)
    child.sendline("n")
    assert finish(child) == 7  # a human's stop
    run = run_id(tmp_path)
    child = spawn(tmp_path, None, "rewind", run, "--to-step", "2", "--yes")
    assert finish(child) == 0
    assert not (tmp_path / "ws" / "b.txt").exists()

    child = spawn(
        tmp_path, server, "resume", run, "--from-step", "2", "--why", "b.txt was the wrong file"
    )
    child.expect_exact("UNDONE:")
    child.expect_exact("steps 2, 3 (b.txt was the wrong file)")
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact("Files made or changed: a.txt")  # not b.txt: undone
    assert finish(child) == 0
    prompt = server.requests_for("execution")[3]["messages"][-1]["content"]
    assert "undid steps 2-3" in prompt and "b.txt was the wrong file" in prompt
    assert "write_file" in prompt.split("undid steps")[1]
    events = [json.loads(line) for line in (tmp_path / "home/runs" / run / "events.jsonl").open()]
    undone = [e for e in events if e["event"] == "StepsUndone"]
    assert undone and undone[0]["steps"] == [2, 3]


def test_the_memory_of_an_undone_step_is_forgotten(tmp_path: Path) -> None:
    from autoagent.store.embeddings import WordEmbedder
    from autoagent.store.memory import Memory

    memory = Memory.open_local(tmp_path / "memory", "Scout", WordEmbedder())
    memory.add("Task: notes\nCommand: write_file b.txt", "run-step-2", run_id="run", step=2)
    memory.add("Task: notes\nCommand: write_file a.txt", "run-step-1", run_id="run", step=1)
    memory.flush()
    memory.forget(["run-step-2"])
    found = [m.text for m in memory.recall("write_file notes", 5)]
    memory.close()
    assert found == ["Task: notes\nCommand: write_file a.txt"]


def prompt_choices(child: pexpect.spawn) -> str:
    """The choices the approval prompt offers, once it is shown."""
    child.expect_exact(PROMPT)
    child.expect_exact("or type feedback: ")
    return str(child.before)


def test_u_at_the_next_prompt_undoes_the_command_before_the_agent_goes_on(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "kept.txt").write_text("as it was\n")
    server.script(
        "execution",
        execution_reply("write_file", path="kept.txt", content="overwritten"),
        execution_reply("write_file", path="b.txt", content="next"),
        execution_reply("finish", reason="Done."),
    )
    child = spawn(tmp_path, server, "run", *PROFILE)
    assert "'u'" not in prompt_choices(child)  # nothing ran yet: nothing to undo
    child.sendline("y")
    child.expect_exact("Changed: kept.txt")
    assert "'u' to undo step 1's command" in prompt_choices(child)
    assert (ws / "kept.txt").read_text() == "overwritten"
    child.sendline("u")
    child.expect_exact("UNDONE:")
    child.expect_exact("step 1 (undone at the prompt)")
    assert "'u'" not in prompt_choices(child)  # the finish: step 1 is undone already
    assert (ws / "kept.txt").read_text() == "as it was\n"
    assert not (ws / "b.txt").exists()  # step 2's command did not run
    child.sendline("y")
    assert finish(child) == 0

    prompt = server.requests_for("execution")[2]["messages"][-1]["content"]
    assert "The human undid step 1 (write_file" in prompt
    assert "Your proposed write_file was not run" in prompt
    run = run_id(tmp_path)
    events = [json.loads(line) for line in (tmp_path / "home/runs" / run / "events.jsonl").open()]
    assert [e["steps"] for e in events if e["event"] == "StepsUndone"] == [[1]]
    assert [e["to_step"] for e in events if e["event"] == "Rewound"] == [1]
    checkpoint = json.loads((tmp_path / "home/runs" / run / "checkpoint.json").read_text())
    assert checkpoint["undone"] == [1]

    # The undo is a rewind like the others: it can itself be undone.
    child = spawn(tmp_path, None, "rewind", run, "--undo", "--yes")
    child.expect_exact("Rewound:")
    assert finish(child) == 0
    assert (ws / "kept.txt").read_text() == "overwritten"
