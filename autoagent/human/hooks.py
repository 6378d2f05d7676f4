"""Hooks at work: the user's own commands (hooks_config.py) run before and after each command
and when the run ends, as Claude Code and Codex run them.

A hook gets the event as JSON on its stdin and runs unconfined, by `/bin/sh -c`, in the folder
the run started in, in a process group of its own that is killed when it takes longer than its
timeout. Before a command (PreToolUse): exit 0 leaves the decision to the usual rules, unless its
stdout is a JSON answer that allows, denies or asks; exit 2 denies, its stderr being the reason
the agent reads; anything else (another exit code, a timeout, an answer that cannot be read)
denies and says so. After a command (PostToolUse), exit 2's stderr and a JSON answer's reason
or additional context go to the agent. Every hook run is in the audit log, with its command.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.text import decode, strip_terminal_escapes, trim_middle
from .authorize import Proposal
from .hooks_config import Hook, HookEvent
from .policy import Rule
from .requests import append_audit

log = logging.getLogger(__name__)

DENY_EXIT = 2
OUTPUT_CHARS = 2000  # of a hook's stdout or stderr kept for the agent and the audit log
REAP_SECONDS = 5.0  # for a killed hook's pipes to close


@dataclass(frozen=True)
class HookRun:
    """What one hook did: its exit code, or why it has none (`failure`)."""

    hook: Hook
    exit_code: int | None
    stdout: str
    stderr: str
    failure: str = ""  # it could not start, or did not end in time


@dataclass(frozen=True)
class HookDecision:
    """A PreToolUse hook's say about a command: allow, deny or ask, and why."""

    rule: Rule
    reason: str
    hook: str  # its command, as the file writes it


def run_hook(
    hook: Hook, payload: Mapping[str, Any], *, cwd: Path, env: Mapping[str, str]
) -> HookRun:
    """Run `hook` with `payload` on its stdin, killing its process group past its timeout."""
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", hook.command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # its own process group, killed whole on timeout
        )
    except OSError as exc:
        return HookRun(hook, None, "", "", failure=f"could not start ({exc.strerror})")
    try:
        out, err = process.communicate(data, timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return HookRun(
            hook, None, "", "", failure=f"did not finish within {hook.timeout:g} seconds"
        )
    except BaseException:  # Ctrl-C, which its own session does not get: it ends with the run
        _kill_group(process)
        raise
    return HookRun(hook, process.returncode, _clean(out), _clean(err))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=REAP_SECONDS)
    except subprocess.TimeoutExpired:  # a child that left the group holds the pipes open
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()


def _clean(data: bytes) -> str:
    return trim_middle(strip_terminal_escapes(decode(data)).strip(), OUTPUT_CHARS)


class HookAnswerError(ValueError):
    """A hook's stdout that looks like a JSON answer but is not one this version reads."""


def _json_answer(stdout: str) -> dict[str, Any] | None:
    """The JSON object a hook answered on stdout; None for plain text (no answer)."""
    if not stdout.startswith("{"):
        return None
    try:
        answer = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise HookAnswerError(f"its stdout is not a JSON answer ({exc})") from exc
    if not isinstance(answer, dict):
        raise HookAnswerError("its stdout is not a JSON object")
    return answer


def _specific(answer: dict[str, Any]) -> dict[str, Any]:
    specific = answer.get("hookSpecificOutput") or {}
    if not isinstance(specific, dict):
        raise HookAnswerError("its hookSpecificOutput is not an object")
    return specific


# The answers a PreToolUse hook may give: Claude Code's permissionDecision, and its older
# top-level decision ("approve" or "block").
_DECISIONS = {"allow": Rule.ALLOW, "deny": Rule.DENY, "ask": Rule.ASK}
_OLD_DECISIONS = {"approve": Rule.ALLOW, "block": Rule.DENY}


def pre_decision(run: HookRun) -> HookDecision | None:
    """What a PreToolUse hook's run says about the command; None leaves it to the rules."""
    hook = run.hook.command
    if run.failure:
        return HookDecision(Rule.DENY, f"the hook {run.failure}", hook)
    if run.exit_code == DENY_EXIT:
        return HookDecision(Rule.DENY, run.stderr or "it gave no reason", hook)
    if run.exit_code != 0:
        detail = f": {run.stderr}" if run.stderr else ""
        return HookDecision(
            Rule.DENY, f"the hook failed with exit code {run.exit_code}{detail}", hook
        )
    try:
        answer = _json_answer(run.stdout)
        if answer is None:
            return None
        specific = _specific(answer)
        if "permissionDecision" in specific:
            value, reason = specific["permissionDecision"], specific.get("permissionDecisionReason")
            rule = _DECISIONS.get(value) if isinstance(value, str) else None
        elif "decision" in answer:
            value, reason = answer["decision"], answer.get("reason")
            rule = _OLD_DECISIONS.get(value) if isinstance(value, str) else None
        else:
            return None
        if rule is None:
            raise HookAnswerError(f"its decision {value!r} is not allow, deny or ask")
    except HookAnswerError as exc:
        return HookDecision(Rule.DENY, f"the hook's answer cannot be read: {exc}", hook)
    return HookDecision(rule, str(reason) if reason else "", hook)


def post_feedback(run: HookRun) -> str:
    """What a PostToolUse hook's run tells the agent (empty: nothing)."""
    if run.failure or run.exit_code not in (0, DENY_EXIT):
        return ""  # the command ran; a failing hook is the user's to see (logged, audited)
    if run.exit_code == DENY_EXIT:
        return run.stderr
    try:
        answer = _json_answer(run.stdout)
        if answer is None:
            return ""
        said = [answer.get("reason") if answer.get("decision") == "block" else None]
        said.append(_specific(answer).get("additionalContext"))
    except HookAnswerError as exc:
        return f"The hook's answer cannot be read: {exc}."
    return "\n".join(str(text) for text in said if text)


class Hooks:
    """The hooks of one run. `home` holds the audit log their runs are appended to."""

    def __init__(
        self,
        hooks: tuple[Hook, ...],
        *,
        cwd: Path,
        env: Mapping[str, str],
        home: Path,
        run_id: str,
        agent: str,
    ) -> None:
        self.hooks = hooks
        self.cwd = cwd
        self.env = env
        self.home = home
        self.run_id = run_id
        self.agent = agent

    def before(self, proposal: Proposal) -> HookDecision | None:
        """The PreToolUse hooks' say about `proposal`: the first deny, else an ask, else an
        allow; None when none of them decides."""
        payload = self._payload(HookEvent.PRE, proposal)
        decisions: list[HookDecision] = []
        for hook in self._for(HookEvent.PRE, proposal.name):
            run = run_hook(hook, payload, cwd=self.cwd, env=self.env)
            decision = pre_decision(run)
            self._audit(
                run,
                proposal,
                decision.rule.value if decision else "none",
                decision.reason if decision else "",
            )
            if decision is not None:
                if decision.rule is Rule.DENY:
                    return decision
                decisions.append(decision)
        for rule in (Rule.ASK, Rule.ALLOW):
            if found := [d for d in decisions if d.rule is rule]:
                return found[0]
        return None

    def after(self, proposal: Proposal, output: str, ok: bool) -> list[str]:
        """Run the PostToolUse hooks on a command's result; what they tell the agent."""
        payload = self._payload(HookEvent.POST, proposal) | {
            "result": {"output": output, "ok": ok},
            "tool_response": {"output": output, "ok": ok},
        }
        said = []
        for hook in self._for(HookEvent.POST, proposal.name):
            run = run_hook(hook, payload, cwd=self.cwd, env=self.env)
            feedback = post_feedback(run)
            self._audit(run, proposal, "feedback" if feedback else "none", feedback)
            if run.failure or run.exit_code not in (0, DENY_EXIT):
                log.warning("the PostToolUse hook %r %s", hook.command, _how_it_failed(run))
            if feedback:
                said.append(
                    f"The hook `{hook.command}` says about {proposal.name}'s result: {feedback}"
                )
        return said

    def at_end(self, *, status: str, cause: str | None, reason: str, steps: int) -> None:
        """Run the Stop hooks: the run has ended, for `cause`."""
        payload = {
            "hook_event_name": HookEvent.STOP.value,
            "run": self.run_id,
            "status": status,
            "stop_cause": cause,
            "reason": reason,
            "steps": steps,
            "cwd": str(self.cwd),
        }
        for hook in self._for(HookEvent.STOP, ""):
            run = run_hook(hook, payload, cwd=self.cwd, env=self.env)
            self._audit(run, None, "none", "")
            if run.failure or run.exit_code != 0:
                log.warning("the Stop hook %r %s", hook.command, _how_it_failed(run))

    def _for(self, event: HookEvent, name: str) -> list[Hook]:
        return [h for h in self.hooks if h.event is event and (not name or h.matches(name))]

    def _payload(self, event: HookEvent, proposal: Proposal) -> dict[str, Any]:
        return {
            "hook_event_name": event.value,
            "command": proposal.name,
            "arguments": proposal.args,
            "risk": proposal.risk.value,
            "run": self.run_id,
            "step": proposal.step,
            "cwd": str(self.cwd),
            # The names Claude Code's hooks read, so a hook written for it finds them.
            "tool_name": proposal.name,
            "tool_input": proposal.args,
        }

    def _audit(self, run: HookRun, proposal: Proposal | None, decision: str, reason: str) -> None:
        append_audit(
            self.home,
            {
                "at": time.time(),
                "run_id": self.run_id,
                "agent": self.agent,
                "step": proposal.step if proposal else None,
                "kind": "hook",
                "event": run.hook.event.value,
                "command": proposal.name if proposal else None,
                "args": proposal.args if proposal else None,
                "hook": run.hook.command,
                "exit_code": run.exit_code,
                "failure": run.failure or None,
                "decision": decision,
                "text": reason,
                "channel": "hook",
            },
        )


def _how_it_failed(run: HookRun) -> str:
    if run.failure:
        return run.failure
    return f"failed with exit code {run.exit_code}" + (f": {run.stderr}" if run.stderr else "")
