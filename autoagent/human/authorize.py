"""The human in the loop: what a person may answer, and who decides whether a command runs."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Protocol

import yaml

from ..base.decision import Actor, Channel, Decision, DecisionKind
from ..base.errors import ConfigError, not_utf8
from ..base.risk import Risk

PROMPT = (
    "Enter 'y' to authorise, 'y -N' to run N commands without asking, "
    "'n' to stop, or type feedback: "
)

_APPROVE_N = re.compile(r"^y\s*-\s*(\d+)$", re.IGNORECASE)


def parse_answer(answer: str) -> Decision | None:
    """Read a human's answer to an approval; None means ask again (an empty answer)."""
    text = answer.strip()
    if not text:
        return None
    lowered = text.lower()
    if lowered in {"y", "yes"}:
        return Decision(kind=DecisionKind.APPROVE)
    if lowered in {"n", "no"}:
        return Decision(kind=DecisionKind.STOP)
    if match := _APPROVE_N.match(text):
        count = int(match.group(1))
        return Decision(kind=DecisionKind.APPROVE, count=count) if count >= 1 else None
    return Decision(kind=DecisionKind.FEEDBACK, text=text)


@dataclass(frozen=True)
class Proposal:
    """A command ready to run: validated, with the exact arguments that will be used."""

    step: int
    name: str
    args: dict[str, Any]
    risk: Risk
    needs_approval: bool = True
    note: str = ""  # why the human is asked although they would not expect it


class Human(Protocol):
    """Asks a person. The desk (requests.py), scripted and test implementations plug in the
    same way; a decision says through which channel and by whom it was given."""

    # Whether someone can answer the agent's questions (ask_user) in this run. A terminal in a
    # continuous run cannot; a channel that reaches a person elsewhere could.
    can_answer: bool

    def authorize(self, proposal: Proposal) -> Decision:
        """Ask whether `proposal` may run; raise KeyboardInterrupt or return a stop to end."""
        ...

    def ask(self, question: str, step: int) -> str:
        """Ask a free question (the ask_user command of `step`); raise InputEnded when no
        answer can ever come (the input is closed), CommandError when none came in time."""
        ...


class Rule(StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


MCP_PREFIX = "mcp__"


@dataclass(frozen=True)
class Policy:
    """Per-command rules from the policy file; commands not named follow their risk tier.

    A rule may name commands with a glob (`mcp__github__*`): a command's own rule wins, else
    the first glob that matches it, in the order of the file. An MCP tool's name is matched
    as its two parts, the server and the tool (see `mcp_parts`)."""

    rules: dict[str, Rule] = field(default_factory=dict)
    source: Path | None = field(default=None, compare=False)
    servers: tuple[str, ...] = field(default=(), compare=False)  # the MCP servers configured

    def rule_for(self, name: str) -> Rule | None:
        if name in self.rules:
            return self.rules[name]
        for pattern, rule in self.rules.items():
            if _is_glob(pattern) and _matches(pattern, name):
                return rule
        return None

    @classmethod
    def load(
        cls, path: Path | None, commands: Collection[str], servers: Collection[str] = ()
    ) -> Policy:
        """The rules in the policy file at `path`, for the command names in `commands`, and
        the tools of the MCP servers named `servers`, whose tools are known only once they
        run (`check_tools` checks those rules then).

        Anything the file says that would not be obeyed exactly is an error: an unknown
        command or key, a name or rule in the wrong case."""
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"Cannot use the policy file: {not_utf8(path, exc)}") from exc
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"Cannot use the policy file {path}: {exc}.") from exc
        rules, problems = _read_rules(data, commands, tuple(servers))
        policy = cls(rules, path, tuple(servers))
        policy._refuse(problems)
        return policy

    def check_tools(self, offered: Mapping[str, Collection[str]]) -> None:
        """Raise ConfigError for a rule about MCP tools that matches none of the tools the
        servers list (`offered`: the servers that started, and their tools' names). A rule
        about a server that did not start cannot be checked, and is not."""
        problems = []
        for pattern in self.rules:
            parts = mcp_parts(pattern)
            if parts is None:
                continue
            servers = [name for name in self.servers if fnmatchcase(name, parts[0])]
            if not servers or any(name not in offered for name in servers):
                continue
            names = [f"{MCP_PREFIX}{s}__{tool}" for s in servers for tool in offered[s]]
            if any(_matches(pattern, name) for name in names):
                continue
            which = ", ".join(repr(name) for name in servers)
            where = f"the MCP server{'s' if len(servers) > 1 else ''} {which}"
            closest = _closest(pattern, names, always=True)
            problems.append(f"{pattern!r} matches no tool of {where} as written{closest}")
        self._refuse(problems)

    def _refuse(self, problems: list[str]) -> None:
        if problems:
            raise ConfigError(
                f"The policy file {self.source} would not be obeyed as written: "
                f"{'; '.join(problems)}. It maps command names to allow, ask or deny under "
                "'commands:' (see policy.example.yaml)."
            )


def mcp_parts(name: str) -> tuple[str, str] | None:
    """The server and the tool of `mcp__SERVER__TOOL` (a rule may give either as a glob), or
    None for a name that is not an MCP tool's, or names no tool.

    A server's name holds no `__` and does not end with `_` (mcp_config.py), so the first `__`
    after the prefix is the one place such a name splits: `mcp__a__b__c` is the tool `b__c` of
    the server `a`. A rule such as `mcp__git*`, with no tool part, names every tool of the
    servers it matches."""
    if not name.startswith(MCP_PREFIX):
        return None
    server, split, tool = name.removeprefix(MCP_PREFIX).partition("__")
    if split:
        return (server, tool) if server and tool else None
    return (server, "*") if server.endswith("*") else None


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _matches(pattern: str, name: str) -> bool:
    rule, command = mcp_parts(pattern), mcp_parts(name)
    if rule is None or command is None:
        return not pattern.startswith(MCP_PREFIX) and fnmatchcase(name, pattern)
    return fnmatchcase(command[0], rule[0]) and fnmatchcase(command[1], rule[1])


def _read_rules(
    data: Any, commands: Collection[str], servers: tuple[str, ...] = ()
) -> tuple[dict[str, Rule], list[str]]:
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        return {}, ["it is not a mapping"]
    problems = [f"unknown key {key!r}" for key in data if key != "commands"]
    section = data.get("commands") or {}
    if not isinstance(section, dict):
        return {}, [*problems, "'commands' is not a mapping of command names to rules"]
    rules: dict[str, Rule] = {}
    for name, value in section.items():
        if (problem := _unknown(str(name), commands, servers)) is not None:
            problems.append(problem)
            continue
        try:
            rules[name] = Rule(value)
        except ValueError:
            problems.append(f"{name}: {value!r} is not allow, ask or deny (lower case)")
    return rules, problems


def _unknown(name: str, commands: Collection[str], servers: tuple[str, ...]) -> str | None:
    """What is wrong with a rule's name, if it can name nothing; None if it can."""
    if not name.startswith(MCP_PREFIX):
        return None if name in commands else f"unknown command {name!r}{_closest(name, commands)}"
    parts = mcp_parts(name)
    if parts is None:
        return (
            f"{name!r} names no tool: write {MCP_PREFIX}SERVER__TOOL, or "
            f"{MCP_PREFIX}SERVER__* for every tool of a server"
        )
    if any(fnmatchcase(server, parts[0]) for server in servers):
        return None
    return (
        f"unknown command {name!r}: no MCP server is named {parts[0]!r}"
        f"{_closest(parts[0], servers)}"
    )


def _closest(name: str, known: Collection[str], *, always: bool = False) -> str:
    """A hint naming the known name closest to `name` and the letters of `name` that only
    look like ASCII ones; empty when no name is close (unless `always`)."""
    same_but_case = [k for k in known if k.lower() == name.lower()]
    close = same_but_case or difflib.get_close_matches(
        name, list(known), n=1, cutoff=0.0 if always else 0.6
    )
    if not close:
        return ""
    lookalikes = _lookalikes(name, close[0])
    return f" (did you mean {close[0]!r}?{lookalikes.rstrip('.')})"


def _lookalikes(name: str, known: str) -> str:
    """The letters of `name` outside ASCII, each with what it stands in place of in `known`."""
    instead: dict[int, str] = {}
    matcher = difflib.SequenceMatcher(a=name, b=known, autojunk=False)
    for op, start, end, known_start, known_end in matcher.get_opcodes():
        if op == "replace" and end - start == known_end - known_start:
            instead.update(zip(range(start, end), known[known_start:known_end], strict=True))
    letters = []
    for index, char in enumerate(name):
        if char.isascii():
            continue
        described = f"{char!r}, U+{ord(char):04X} {unicodedata.name(char, 'unnamed')},"
        if (ascii_char := instead.get(index)) is not None and ascii_char.isascii():
            described += f" in place of {ascii_char!r}"
        letters.append(described.rstrip(","))
    if not letters:
        return ""
    return f" It holds look-alike letters outside ASCII: {'; '.join(letters)}."


class Gate:
    """Decides, for each proposal, whether to run it, refuse it, or ask the human.

    `screen` decides what needs no human; `ask` asks. The loop saves the step in between, so a
    run killed while it waits for a human is waiting again, on the same request, when resumed."""

    def __init__(
        self,
        human: Human,
        *,
        continuous: bool,
        policy: Policy | None = None,
        allow_high_risk: bool = False,
        wait_for_human: bool = False,
    ) -> None:
        self.human = human
        self.continuous = continuous
        self.policy = policy or Policy()
        self.allow_high_risk = allow_high_risk
        # Continuous runs hold what needs a human until someone answers, instead of refusing it.
        self.wait_for_human = wait_for_human
        self.pre_approved = 0  # left from a 'y -N'

    def revoke_pre_approval(self) -> None:
        """Forget what a 'y -N' authorised in advance: the human sees every command again
        (until they answer 'y -N' anew)."""
        self.pre_approved = 0

    def decide(self, proposal: Proposal) -> Decision:
        decision = self.screen(proposal)
        return decision if decision is not None else self.ask(proposal)

    def screen(self, proposal: Proposal) -> Decision | None:
        """The decision on `proposal` when no human is needed for it; None when one is."""
        if not proposal.needs_approval:  # the command is itself a talk with the human
            if not self.human.can_answer:
                return _refusal(
                    Actor.NO_ONE,
                    f"Refused: {proposal.name} needs someone to answer, and no one can in "
                    "this run (it is continuous). Decide for yourself and say what you "
                    "assumed, or finish and say what you need to know.",
                )
            return Decision(kind=DecisionKind.APPROVE, by=Actor.NOT_NEEDED)
        rule = self.policy.rule_for(proposal.name)
        if rule is Rule.DENY:
            return _refusal(
                Actor.POLICY, f"Refused: the policy denies {proposal.name}. Try another way."
            )
        if self.continuous:
            needs_human = rule is Rule.ASK or (
                proposal.risk is Risk.HIGH and not self.allow_high_risk and rule is not Rule.ALLOW
            )
            if not needs_human:
                return Decision(kind=DecisionKind.APPROVE, by=Actor.CONTINUOUS)
            if self.wait_for_human:
                return None
            return _refusal(
                Actor.CONTINUOUS,
                f"Refused: {proposal.name} needs a human's approval, and this run is "
                "continuous; try another way or ask_user.",
            )
        # 'y -N' covers low and medium risk; a high-risk command needs its own yes, unless
        # the policy explicitly allows it.
        covered = proposal.risk is not Risk.HIGH or rule is Rule.ALLOW
        if self.pre_approved > 0 and rule is not Rule.ASK and covered:
            self.pre_approved -= 1
            return Decision(kind=DecisionKind.APPROVE, by=Actor.PRE_APPROVED)
        return None

    def ask(self, proposal: Proposal) -> Decision:
        """Ask the human about `proposal`, which `screen` left to them."""
        rule = self.policy.rule_for(proposal.name)
        if not self.continuous and self.pre_approved > 0 and rule is not Rule.ASK:
            proposal = replace(
                proposal,
                note=(
                    f"High risk: asked although {self.pre_approved} commands are authorised "
                    "in advance ('y -N' covers low and medium risk only)."
                ),
            )
        decision = self.human.authorize(proposal)
        if decision.approved:
            # A plain 'y' answers this command only; what was authorised in advance remains.
            self.pre_approved = max(self.pre_approved, decision.count - 1)
        return decision


def _refusal(by: Actor, reason: str) -> Decision:
    """The harness's deny: the command does not run, and the model is told `reason`."""
    return Decision(kind=DecisionKind.DENY, by=by, text=reason)


class ScriptedHuman:
    """Answers from a list, for tests and demos; records what it was asked."""

    def __init__(
        self, answers: list[str], replies: list[str] | None = None, *, can_answer: bool = True
    ) -> None:
        self.can_answer = can_answer
        self.answers = list(answers)
        self.replies = list(replies or [])
        self.asked: list[Proposal] = []
        self.questions: list[str] = []

    def authorize(self, proposal: Proposal) -> Decision:
        self.asked.append(proposal)
        while self.answers:
            decision = parse_answer(self.answers.pop(0))
            if decision is not None:
                return decision.model_copy(update={"channel": Channel.SCRIPT})
        return Decision(kind=DecisionKind.STOP, channel=Channel.SCRIPT)

    def ask(self, question: str, step: int = 0) -> str:
        self.questions.append(question)
        return self.replies.pop(0) if self.replies else ""
