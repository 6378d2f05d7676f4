import threading
import time
from pathlib import Path

import pytest

from autoagent.base.errors import MemoryStoreError
from autoagent.store.embeddings import LocalEmbedder, WordEmbedder, transformer_runs_here
from autoagent.store.memory import Memory, collection_name
from autoagent.store.spool import SPOOL


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


def test_related_texts_rank_above_unrelated_ones(embedder: LocalEmbedder) -> None:
    query = embedder.embed_query("How do I bake sourdough bread?")
    docs = embedder.embed_documents(
        [
            "The stock market fell three percent on Tuesday.",
            "Knead the dough with flour, water and starter, then bake it in a hot oven.",
            "Python lists support slicing and comprehensions.",
        ]
    )
    scores = [sum(a * b for a, b in zip(query, doc, strict=True)) for doc in docs]
    assert max(range(3), key=scores.__getitem__) == 1


def test_recall_finds_the_relevant_memory_across_runs(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    memory = Memory.open_local(tmp_path / "memory", "Scout", embedder)
    memory.add(
        "Task: find the capital of France\nResult: Paris is the capital of France.",
        run_id="r1",
        step=1,
    )
    memory.add("Task: check the weather\nResult: It is raining in Oslo.", run_id="r1", step=2)
    memory.add("Task: list files\nResult: notes.md, data.csv", run_id="r1", step=3)
    memory.close()

    again = Memory.open_local(tmp_path / "memory", "Scout", embedder)  # a later run
    found = again.recall("What is the capital city of France?", 2)
    assert "Paris" in found[0].text
    assert found[0].metadata["run_id"] == "r1" and found[0].metadata["step"] == 1
    assert again.count() == 3
    assert [m.metadata["step"] for m in again.list(10)] == [3, 2, 1]
    again.close()


def test_agents_do_not_share_memories(tmp_path: Path, embedder: LocalEmbedder) -> None:
    scout = Memory.open_local(tmp_path / "m", "Scout", embedder)
    scout.add("Scout's secret: the password is swordfish", run_id="r", step=1)
    scout.close()
    other = Memory.open_local(tmp_path / "m", "Other", embedder)
    assert other.recall("password", 5) == []
    assert other.clear() == 0
    other.close()


def test_a_second_process_on_the_same_store_gets_a_clear_error(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    first = Memory.open_local(tmp_path / "m", "Scout", embedder)
    import subprocess
    import sys

    code = (
        "from pathlib import Path; from autoagent.store.chroma import lock_store\n"
        f"lock_store(Path({str(tmp_path / 'm')!r}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "in use by another autoagent process" in result.stderr
    first.close()
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_clear_forgets_everything(tmp_path: Path, embedder: LocalEmbedder) -> None:
    memory = Memory.open_local(tmp_path / "m", "Scout", embedder)
    memory.add("one", run_id="r", step=1)
    memory.add("two", run_id="r", step=2)
    assert memory.clear() == 2
    memory.add("three", run_id="r", step=3)  # the store is still usable after clearing
    assert memory.count() == 1
    memory.close()
    assert Memory.open_local(tmp_path / "m", "Scout", embedder).count() == 1


def test_collection_names_are_valid_and_distinct() -> None:
    a = collection_name("My Agent!", "e5small")
    b = collection_name("my-agent", "e5small")
    assert a != b and a.startswith("agent-my-agent-")
    assert collection_name("💡", "e5small").startswith("agent-agent-")


def test_unwritable_store_is_a_clear_error(tmp_path: Path, embedder: LocalEmbedder) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MemoryStoreError, match="Cannot open the memory store"):
        Memory.open_local(blocker / "memory", "Scout", embedder)


class CountingEmbedder:
    """The real embedder, counting the queries it embeds."""

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner = inner
        self.key = inner.key
        self.queries: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return self.inner.embed_query(text)


def test_prepared_queries_are_embedded_once(tmp_path: Path, embedder: LocalEmbedder) -> None:
    counting = CountingEmbedder(embedder)
    memory = Memory.open_local(tmp_path / "m", "Scout", counting)
    memory.add("Task: bake bread\nResult: knead, rise, bake at 230 C.", run_id="r", step=1)
    memory.flush()
    memory.prepare_queries(["How do I bake bread?", "Which oven temperature?"])
    first = memory.recall("How do I bake bread?", 1)
    again = memory.recall("How do I bake bread?", 1)
    memory.recall("Which oven temperature?", 1)
    memory.close()
    assert "knead" in first[0].text and first == again
    assert sorted(counting.queries) == ["How do I bake bread?", "Which oven temperature?"]


def test_memories_wait_to_be_written_together_and_none_is_lost(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    memory = Memory.open_local(tmp_path / "m", "Scout", embedder)
    first = memory.add("Task: bake bread\nResult: knead, rise, bake.", run_id="r", step=1)
    second = memory.add("Task: buy flour\nResult: two kilos.", run_id="r", step=2)
    assert not memory.written(first) and not memory.written(second)  # waiting for others
    memory.flush(through=first)
    assert memory.written(first) and memory.written(second)  # written in the same store write
    later = [memory.add(f"Task: step {n}\nResult: done.", run_id="r", step=n) for n in range(3, 7)]
    memory.flush(through=later[-1])
    memory.close()
    again = Memory.open_local(tmp_path / "m", "Scout", embedder)
    assert again.count() == 6 and again.missing([first, second, *later]) == []
    again.close()


def test_e5_is_used_only_on_a_cpu_that_can_run_it() -> None:
    flags = "flags\t\t: fpu sse sse2 avx avx2 fma f16c"
    assert transformer_runs_here(f"processor\t: 0\n{flags}\n", "x86_64")
    assert not transformer_runs_here("flags\t\t: fpu sse sse2 sse4_2 avx\n", "x86_64")
    assert transformer_runs_here("", "aarch64")  # its wheel there is a build of its own


def test_a_cpu_without_avx2_still_has_a_memory_by_word_vectors(tmp_path: Path) -> None:
    words = WordEmbedder()
    assert words.key != LocalEmbedder.key  # memories of the two never mix
    memory = Memory.open_local(tmp_path / "m", "Scout", words)
    memory.add("Task: bake bread\nResult: knead the dough, let it rise, bake at 230 C.", step=1)
    memory.add("Task: check the stock market\nResult: shares fell three percent.", step=2)
    memory.flush()
    assert "dough" in memory.recall("How do I bake bread?", 1)[0].text
    memory.close()


class FailingOn:
    """The real embedder, failing on the memories that contain `word`."""

    def __init__(self, inner: LocalEmbedder, word: str) -> None:
        self.inner, self.word, self.key = inner, word, inner.key

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if any(self.word in text for text in texts):
            raise RuntimeError(f"cannot embed {self.word}")
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def test_a_failed_write_is_told_and_the_writes_after_it_still_count(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    memory = Memory.open_local(tmp_path / "m", "Scout", FailingOn(embedder, "boom"))
    bad = memory.add("Task: boom\nResult: this one cannot be embedded.", step=1)
    with pytest.raises(MemoryStoreError, match="cannot embed boom"):
        memory.flush(through=bad)
    good = memory.add("Task: bake bread\nResult: knead, rise, bake.", step=2)
    memory.flush(through=good)
    assert memory.written(good) and not memory.written(bad)
    assert "knead" in memory.recall("How do I bake bread?", 1)[0].text
    memory.close()


class SlowToLoad:
    """The real embedder, whose models take until `ready` is set to load (a busy machine)."""

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner = inner
        self.key = inner.key
        self.ready = threading.Event()

    def load(self) -> None:
        self.ready.wait(30)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def test_closing_before_the_store_loads_keeps_the_memories_for_the_next_opening(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    """A short run ends before the store has loaded: close does not wait for the load; the
    memories are kept beside the store, synced, and are in it once it is next opened."""
    slow = SlowToLoad(embedder)
    memory = Memory.open_local(tmp_path / "m", "Scout", slow, background=True)
    bread = "Task: bake bread\nResult: knead, rise, bake at 230 C."
    memory.add(bread, memory_id="r-step-1", run_id="r", step=1)
    memory.add("Task: buy flour\nResult: two kilos.", memory_id="r-step-2", run_id="r", step=2)
    started = time.monotonic()
    memory.close()
    assert time.monotonic() - started < 1.0
    assert (tmp_path / "m" / SPOOL).exists()
    slow.ready.set()  # the abandoned load ends (two openings at once would race in Chroma)
    for thread in threading.enumerate():
        if thread.name.startswith("background-"):
            thread.join(60)
    assert (tmp_path / "m" / SPOOL).exists()  # it wrote nothing once closed

    later = Memory.open_local(tmp_path / "m", "Scout", embedder, background=True)
    found = later.recall("How do I bake bread?", 1)
    assert found and "knead" in found[0].text
    assert later.count() == 2 and later.missing(["r-step-1", "r-step-2"]) == []
    later.close()
    assert not (tmp_path / "m" / SPOOL).exists()
