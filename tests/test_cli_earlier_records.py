"""A run recorded by an earlier version, whose steps kept a verdict and whose answer files
held a reply, still reads: `show` prints its decisions, `resume` goes on from them, and its
answered requests stay answered."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import checkpoints, finish, spawn

# Written by the version before one decision type: step 1 'y -2' at the terminal, step 2 denied
# by the policy, step 3 authorised in advance, step 4 feedback, step 5 'n'. Only its paths and
# the model's address are put in place here.
RECORDED = Path(__file__).parent / "data" / "run_before_one_decision"
RUN_ID = "20261202-004924-128b"


def put_in_place(tmp_path: Path, server: FakeOpenAIServer) -> Path:
    run_dir = tmp_path / "home" / "runs" / RUN_ID
    shutil.copytree(RECORDED, run_dir)
    for path in run_dir.rglob("*.json*"):
        text = path.read_text(encoding="utf-8")
        text = text.replace("@HOME@", str(tmp_path / "home"))
        text = text.replace("@WORKSPACE@", str(tmp_path / "ws"))
        path.write_text(text.replace("@BASE_URL@", server.base_url), encoding="utf-8")
    (tmp_path / "ws").mkdir()
    for name in ("a.txt", "b.txt"):
        (tmp_path / "ws" / name).write_text(name[0])
    return run_dir


def test_show_prints_the_decisions_of_a_run_an_earlier_version_recorded(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    put_in_place(tmp_path, server)
    child = spawn(tmp_path, server, "show", RUN_ID)
    for text in (
        "Decision: approve for 2 commands by human (terminal, root, request a6da616a2636)",
        "REFUSED:",  # then, after its style,
        "Refused: the policy denies delete_file. Try another way.",
        "Decision: deny by policy (harness)",
        "Decision: approve by pre-approved (harness)",
        "FEEDBACK:",
        "use notes.md",
        "Decision: feedback by human (terminal, root, request b81e1cc45aa9)",
        "Decision: stop by human (terminal, root, request e7caa29c3e49)",
        "Run stopped:",
    ):
        child.expect_exact(text)
    assert finish(child) == 0
    # Its answer files still answer their requests: the first answer stands.
    child = spawn(tmp_path, server, "deny", "a6da616a2636")
    child.expect_exact("already answered: approve by root through the terminal")
    assert finish(child) == 1


def test_resume_goes_on_from_the_decisions_an_earlier_version_recorded(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    put_in_place(tmp_path, server)
    server.script("execution", execution_reply("finish", reason="Done.", goal_report=[]))
    child = spawn(tmp_path, server, "resume", RUN_ID, "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    # The model is told of the old steps what it was told then.
    [prompt] = server.requests_for("execution")
    told = json.dumps(prompt["messages"], ensure_ascii=False)
    assert "Refused: the policy denies delete_file. Try another way." in told
    assert "Not run: the human gave feedback instead." in told
    [state] = checkpoints(tmp_path)
    decisions = [step["decision"] for step in state["recent"][:4]]
    assert [(d["kind"], d["by"], d["count"]) for d in decisions] == [
        ("approve", "human", 2),
        ("deny", "policy", 1),
        ("approve", "pre-approved", 1),
        ("feedback", "human", 1),
    ]
    assert decisions[3]["text"] == "use notes.md" and "verdict" not in state["recent"][0]
