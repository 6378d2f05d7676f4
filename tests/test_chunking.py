from __future__ import annotations

from autoagent.tools.chunking import keywords, relevant_chunks, split_chunks


def test_split_keeps_everything_within_the_limit() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * (i * 37 % 300) for i in range(60)]
    paragraphs.append("x" * 7000)  # one unbreakable run
    text = "\n\n".join(paragraphs)
    chunks = split_chunks(text, max_chars=1000)
    assert all(len(c) <= 1000 for c in chunks)
    assert "".join(c.replace("\n", "").replace(" ", "") for c in chunks) == text.replace(
        "\n", ""
    ).replace(" ", "")


def test_split_short_text_is_one_chunk() -> None:
    assert split_chunks("  hello\n\nworld  ") == ["hello\n\nworld"]
    assert split_chunks("") == []


def test_keywords_drop_stop_words() -> None:
    assert keywords("What is the WEIGHT of a capybara?") == ["weight", "capybara"]


def test_relevant_chunks_prefer_rare_matching_words_and_keep_order() -> None:
    chunks = [
        "Animals live in many places. Animals eat.",
        "The capybara is the largest rodent. A capybara weighs about 66 kilograms.",
        "Animals again, animals everywhere.",
        "Rivers and lakes.",
        "Capybara weight varies by season.",
    ]
    picked = relevant_chunks(chunks, "How much does a capybara weigh, in kilograms?", 2)
    assert picked == [chunks[1], chunks[4]]


def test_relevant_chunks_without_matches_return_the_start() -> None:
    chunks = ["one", "two", "three", "four"]
    assert relevant_chunks(chunks, "zebra", 2) == ["one", "two"]
    assert relevant_chunks(chunks, "zebra", 10) == chunks
