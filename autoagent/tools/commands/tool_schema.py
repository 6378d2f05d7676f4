"""A JSON schema from elsewhere (an MCP tool's input schema), made safe to check arguments with.

Such a schema is untrusted, like everything a server says. Checking the model's arguments
against it must not reach the network, must not recurse without end, and must not hold the
agent: so its references are resolved only within the schema itself (never fetched), a schema
whose references point at nothing or loop back on themselves is refused before its tool is
offered, and each check runs under a deadline.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import ValidationError
    from jsonschema.protocols import Validator
    from referencing import Specification
    from referencing._core import Resolver

CHECK_SECONDS = 2.0  # arguments are checked in milliseconds; only a runaway takes longer
# Keywords that apply a subschema to the same value, not to a part of it: following them (and
# references) back to where one started never ends.
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MANY = ("allOf", "anyOf", "oneOf")
_REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef")


class UnusableSchema(ValueError):
    """The schema cannot be used to check arguments; the message says why."""


class CheckTimedOut(UnusableSchema):
    """Checking the arguments took longer than CHECK_SECONDS."""


def checked_validator(schema: Mapping[str, Any]) -> Validator:
    """A validator for `schema` that never fetches a reference; UnusableSchema if the schema
    is not valid JSON schema, has a reference that points at nothing in it (a URL included),
    or a reference that loops back to itself."""
    from jsonschema import SchemaError, validators
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012, specification_with

    try:
        cls = validators.validator_for(schema, default=validators.Draft202012Validator)
        cls.check_schema(schema)
    except SchemaError as exc:
        raise UnusableSchema(f"not a valid JSON schema: {exc.message}") from exc
    except (TypeError, ValueError) as exc:  # a $schema that is not a string, and the like
        raise UnusableSchema(f"not a valid JSON schema: {exc}") from exc
    specification = specification_with(cls.META_SCHEMA.get("$id", ""), default=DRAFT202012)
    # An empty registry: a reference resolves within the schema (and the metaschemas jsonschema
    # bundles), and nothing is ever retrieved. The default one fetches any URL it is given.
    registry: Registry[Any] = Registry()
    try:
        _check_references(schema, specification, registry)
    except RecursionError:
        raise UnusableSchema("it is nested too deeply to be checked") from None
    validator = cls(schema, registry=registry)
    errors(validator, {})  # the first check, on an empty object: what is left breaks here
    return validator


def errors(validator: Validator, args: Any) -> list[ValidationError]:
    """Everything in `args` that does not fit; UnusableSchema when the schema fails to check
    them (CheckTimedOut past CHECK_SECONDS)."""
    from referencing.exceptions import Unresolvable

    try:
        with _deadline(CHECK_SECONDS):
            return list(validator.iter_errors(args))
    except _Expired:
        raise CheckTimedOut(
            f"checking the arguments against the tool's schema took over {CHECK_SECONDS:g} s "
            "(a pattern that backtracks without end?)"
        ) from None
    except RecursionError:
        raise UnusableSchema("the arguments are nested too deeply to be checked") from None
    except Unresolvable as exc:
        raise UnusableSchema(f"the schema's reference {exc.ref!r} points at nothing") from None


def _check_references(
    schema: Mapping[str, Any], specification: Specification[Any], registry: Any
) -> None:
    """UnusableSchema for the first reference that points at nothing or loops back."""
    from referencing.exceptions import Unresolvable

    settled: set[int] = set()  # subschemas whose references were all followed to their end

    def follow(node: Any, resolver: Resolver[Any], path: frozenset[int]) -> None:
        if not isinstance(node, Mapping) or id(node) in settled:
            return
        if id(node) in path:
            raise UnusableSchema("a reference loops back to itself, so a check would never end")
        resolver = resolver.in_subresource(specification.create_resource(node))
        path = path | {id(node)}
        for keyword in _REFERENCES:
            ref = node.get(keyword)
            if isinstance(ref, str):
                try:
                    resolved = resolver.lookup(ref)
                except Unresolvable:
                    raise UnusableSchema(
                        f"the reference {ref!r} points at nothing in the schema; references "
                        "are never fetched"
                    ) from None
                follow(resolved.contents, resolved.resolver, path)
        for keyword in _IN_PLACE_ONE:
            follow(node.get(keyword), resolver, path)
        for keyword in _IN_PLACE_MANY:
            for sub in node.get(keyword, ()):
                follow(sub, resolver, path)
        for sub in node.get("dependentSchemas", {}).values():
            follow(sub, resolver, path)
        settled.add(id(node))

    def every(node: Any, resolver: Resolver[Any]) -> None:
        if not isinstance(node, Mapping):
            return
        follow(node, resolver, frozenset())
        resolver = resolver.in_subresource(specification.create_resource(node))
        for sub in specification.subresources_of(node):
            every(sub, resolver)

    every(schema, registry.resolver_with_root(specification.create_resource(schema)))


class _Expired(BaseException):
    """Raised by the alarm; a BaseException, so no `except Exception` on the way catches it."""


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise _Expired in the block after `seconds`.

    A signal, because it is what stops a runaway regular expression: Python's `re` checks for
    signals while it backtracks, and nothing else can stop it short of another process (a
    thread cannot be stopped, and a cap on the length of strings does not help: `^(a+)+$`
    takes minutes on 30 characters). Signals reach only the main thread, where the agent's loop
    runs; elsewhere the check has no deadline."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:  # also when the alarm went off on the way out
        signal.signal(signal.SIGALRM, previous)
