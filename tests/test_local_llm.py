"""The local model's engine (`local_llm`): bounding schemas and grammars, and its errors.

Nothing here loads a model in the test process: models run in the worker process
(tests/test_local_model.py).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from autoagent.base.errors import ModelError
from autoagent.model.local_llm import (
    FLAT_VALUE,
    GrammarChanged,
    LocalChatModel,
    bounded_schema,
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
    assert bounded["properties"]["thoughts"]["properties"]["text"] == {
        "type": "string",
        "maxLength": 1000,
    }
    assert list(bounded["properties"]) == ["thoughts", "command"]  # key order kept
    assert bounded_schema({"type": "array"}) == {
        "type": "array",
        "items": FLAT_VALUE,
        "maxItems": 16,
    }


def test_bounded_schema_bounds_every_string_and_list_but_not_constants() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"const": "write_file"},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "text": {"type": "string", "minLength": 1},
            "short": {"type": "string", "maxLength": 3},
            "plan": {"type": "array", "items": {"type": "string"}, "maxItems": 99},
        },
    }
    bounded = bounded_schema(schema, max_string=5, max_items=2)["properties"]
    assert bounded["name"] == {"const": "write_file"}
    assert bounded["mode"] == {"type": "string", "enum": ["a", "b"]}
    assert bounded["text"] == {"type": "string", "minLength": 1, "maxLength": 5}
    assert bounded["short"]["maxLength"] == 3
    assert bounded["plan"]["maxItems"] == 2
    assert bounded["plan"]["items"]["maxLength"] == 5


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


@pytest.mark.parametrize(
    "rule, patch",
    [
        (r"""char ::= [^"] | "\\" (["\\/bfnrt])""", "strict string characters"),
        (r"""string ::= "\"" char+ "\"" space""", "bounded strings"),
        (r"""kvs ::= kv ( "," space kv )+""", "bounded lists"),
        (
            r"""array ::= "[" space ( value ("," space (value | null))* )? "]" space""",
            "bounded lists",
        ),
    ],
)
def test_a_grammar_a_patch_does_not_know_is_an_error_naming_the_patch(
    rule: str, patch: str
) -> None:
    with pytest.raises(GrammarChanged, match=f"the patch '{patch}' does not apply"):
        tighten_grammar(f"root ::= value\n{rule}\n", max_string=9, max_items=3)


def test_the_patches_apply_to_the_grammars_llama_cpp_writes() -> None:
    """Against llama-cpp-python's own converter, for every schema the agents send: an
    upgrade that writes these rules otherwise fails here, not in a run."""
    grammar = pytest.importorskip("llama_cpp.llama_grammar")
    from autoagent.base.settings import Settings
    from autoagent.model.replies import TaskCreationReply, execution_schema, schema_of
    from autoagent.tools.commands import default_registry

    commands = [(c.name, c.args_schema()) for c in default_registry(Settings())]
    free_tool = ("mcp__t__anything", {"type": "object", "properties": {"opts": {"type": "object"}}})
    schemas = [
        REPLY_SCHEMA,
        execution_schema([*commands, free_tool]),
        schema_of(TaskCreationReply),
    ]
    for schema in schemas:
        for order in (["command", "thoughts"], None):
            written = grammar.json_schema_to_gbnf(json.dumps(bounded_schema(schema, 9, 3)), order)
            tight = tighten_grammar(written, max_string=9, max_items=3)
            rules = dict(line.split(" ::= ", 1) for line in tight.splitlines() if " ::= " in line)
            assert rules["char"].startswith(r'[^"\\\x7F\x00-\x1F] |')
            assert r'[^"\\] |' not in tight and "char*" not in tight
            assert not re.search(r'"," space [^\n]*\)[*+]', tight)
    # The reply schema's free-form arguments: strings and lists bounded by the patches.
    written = grammar.json_schema_to_gbnf(json.dumps(bounded_schema(REPLY_SCHEMA, 9, 3)))
    tight = tighten_grammar(written, max_string=9, max_items=3).splitlines()
    assert r'string ::= "\"" char{0,9} "\"" space' in tight
    assert any(line.endswith('( "," space command-args-additional-kv ){0,2}') for line in tight)


def test_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="No local model file"):
        LocalChatModel(tmp_path / "nope.gguf")


def test_missing_llama_cpp_is_a_model_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    model_file = tmp_path / "any.gguf"
    model_file.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="pip install llama-cpp-python"):
        LocalChatModel(model_file).check()
