"""Scale-out against real parts: memory on a Chroma server."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoagent.base.errors import MemoryStoreError
from autoagent.store.embeddings import LocalEmbedder
from autoagent.store.memory import Memory

from .cli_helpers import PROFILE, finish, spawn
from .servers import chroma_server, free_port

pytestmark = pytest.mark.slow


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
    from autoagent.model.testing import execution_reply

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
