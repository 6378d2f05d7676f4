"""The three agents. Each is a prompt, a model call and a validated parse."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..base.errors import AutoAgentError, ConfigError, ReplyError
from ..base.text import trim_middle
from ..model import prompts
from ..model.llm import ChatModel, Completion, Message, Usage, estimate_tokens
from ..model.pricing import Spend, cost_of
from ..model.replies import (
    ExecutionReply,
    FormatEchoed,
    Reply,
    ReplyProblem,
    TaskCreationReply,
    execution_schema,
    parse_reply,
    schema_of,
)
from ..tools.commands.base import Registry
from .profile import AgentProfile
from .tasks import Task
from .timing import Timings

log = logging.getLogger("autoagent.model.llm")

MAX_REASKS = 3
ECHOED_REPLY_CHARS = 2000  # of an unusable reply, shown back when re-asking (it may be huge)
TASK_CHARS = 2000
MAX_OPEN_TASKS_SHOWN = 5  # the next ones; the whole list is task creation's concern


class BudgetExceeded(AutoAgentError):
    """The run's budget is spent; no more model calls."""


@dataclass(frozen=True)
class CallRecord:
    """One model call, for the audit trail."""

    role: str
    model: str
    prompt_digest: str
    reply: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    problem: str | None  # why the reply could not be used, if it could not


@dataclass(frozen=True)
class CallSeen:
    """One model call as it ended, for an observer (traces): its record and what it cost."""

    record: CallRecord
    completion: Completion
    messages: list[Message]
    cost: float | None  # None when the model has no price


class ModelCaller:
    """Calls the model, re-asks on unusable replies, counts spend, and logs for --debug."""

    def __init__(
        self,
        model: ChatModel,
        spend: Spend,
        prices: dict[str, tuple[float, float]],
        budget: float | None = None,
    ) -> None:
        self.model = model
        self.spend = spend
        self.prices = prices
        self.budget = budget
        self.records: list[CallRecord] = []
        # Real prompt tokens per estimated token, learned from the API's usage figures.
        self.token_ratio = 1.0
        self.timings = Timings()  # the loop reads them per step
        self.on_call: Callable[[CallSeen], None] | None = None
        self.longest_reply = 0  # completion tokens of the longest reply yet: the next may match

    def estimate(self, text: str) -> int:
        """Tokens `text` will likely take, from the offline estimate calibrated by real usage."""
        return int(estimate_tokens(text) * self.token_ratio) + 1

    def ask(
        self,
        role: str,
        messages: list[Message],
        model: str,
        reply_type: type[Reply],
        schema: dict[str, Any] | None = None,
    ) -> Reply:
        """A reply of `reply_type`; `schema` (default: the type's own) goes to the endpoint."""
        messages = list(messages)
        schema = schema or schema_of(reply_type)
        problem: ReplyProblem | None = None
        echoes = 0
        for _attempt in range(MAX_REASKS + 1):
            self._check_budget(messages, model)
            for message in messages:
                log.debug(
                    "prompt to %s (%s) [%s]:\n%s", role, model, message["role"], message["content"]
                )
            with self.timings.phase("model"):
                completion = self.model.complete(messages, model=model, schema=schema)
            cost = self.spend.add(completion.model or model, completion.usage, self.prices)
            self._calibrate(messages, completion.usage)
            self.longest_reply = max(self.longest_reply, completion.usage.completion_tokens)
            log.debug(
                "reply from %s in %.2fs, %d+%d tokens%s:\n%s",
                role,
                completion.seconds,
                completion.usage.prompt_tokens,
                completion.usage.completion_tokens,
                " (estimated)" if completion.usage.estimated else "",
                completion.text,
            )
            try:
                with self.timings.phase("parse"):
                    # Asked again once about the format's words; a second time, what is left
                    # of the reply is taken (those thoughts empty), and the run goes on.
                    reply = parse_reply(completion.text, reply_type, echoes=echoes > 0)
                problem = None
            except ReplyProblem as exc:
                problem = exc
                # Asked again, quietly: a small model does this often, and a line on the
                # screen would read as a failure. The record keeps it; --debug logs it.
                log.info("unusable reply from the %s agent: %s", role, exc)
            record = CallRecord(
                role=role,
                model=model,
                prompt_digest=_digest(messages),
                reply=completion.text,
                prompt_tokens=completion.usage.prompt_tokens,
                completion_tokens=completion.usage.completion_tokens,
                seconds=round(completion.seconds, 3),
                problem=str(problem) if problem else None,
            )
            self._keep(record, completion, messages, cost)
            if problem is None:
                return reply
            echoes += isinstance(problem, FormatEchoed)
            messages += [
                {"role": "assistant", "content": trim_middle(completion.text, ECHOED_REPLY_CHARS)},
                {"role": "user", "content": prompts.render("reask", problem=str(problem))},
            ]
        raise ReplyError(
            f"The {role} agent gave no usable reply in {MAX_REASKS + 1} tries "
            f"(last problem: {problem}). Try a stronger model (--model), then resume the run."
        )

    def say(self, role: str, prompt: str, model: str) -> str:
        """A plain-text call (no JSON), e.g. answering a question about a long page."""
        messages = [{"role": "user", "content": prompt}]
        self._check_budget(messages, model)
        with self.timings.phase("model"):
            completion = self.model.complete(messages, model=model)
        cost = self.spend.add(completion.model or model, completion.usage, self.prices)
        self.longest_reply = max(self.longest_reply, completion.usage.completion_tokens)
        log.debug("plain reply from %s in %.2fs:\n%s", role, completion.seconds, completion.text)
        record = CallRecord(
            role,
            model,
            _digest(messages),
            completion.text,
            completion.usage.prompt_tokens,
            completion.usage.completion_tokens,
            round(completion.seconds, 3),
            None,
        )
        self._keep(record, completion, messages, cost)
        return completion.text

    def _keep(
        self,
        record: CallRecord,
        completion: Completion,
        messages: list[Message],
        cost: float | None,
    ) -> None:
        self.records.append(record)
        if self.on_call is not None:  # the messages as sent: the list grows when re-asking
            self.on_call(CallSeen(record, completion, list(messages), cost))

    def _calibrate(self, messages: list[Message], usage: Usage) -> None:
        if usage.estimated or usage.prompt_tokens <= 0:
            return
        estimated = sum(estimate_tokens(m["content"]) for m in messages)
        ratio = min(max(usage.prompt_tokens / estimated, 0.5), 3.0)
        self.token_ratio = 0.7 * self.token_ratio + 0.3 * ratio

    def drain(self) -> list[CallRecord]:
        records, self.records = self.records, []
        return records

    def _check_budget(self, messages: list[Message], model: str) -> None:
        """Stop before a call the budget cannot pay for: its prompt, as estimated, and a
        reply as long as the longest yet."""
        if self.budget is None:
            return
        if self.spend.cost >= self.budget:
            raise BudgetExceeded(
                f"The budget of ${self.budget:.2f} is spent (${self.spend.cost:.4f} used). "
                "Resume with a higher --budget to go on."
            )
        prompt = sum(self.estimate(m["content"]) for m in messages)
        next_call = cost_of(model, prompt, self.longest_reply, self.prices)
        if self.spend.cost + next_call > self.budget:
            raise BudgetExceeded(
                f"The budget of ${self.budget:.2f} is spent: the next model call (about "
                f"${next_call:.4f}) would pass it (${self.spend.cost:.4f} used). "
                "Resume with a higher --budget to go on."
            )


def _digest(messages: list[Message]) -> str:
    text = "\n".join(f"{m['role']}:{m['content']}" for m in messages)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StepView:
    """A past step as the execution agent sees it."""

    step: int
    command: str
    args: str
    result: str

    def summary(self) -> str:
        """One line, for steps that no longer fit in full."""
        line = f"step {self.step}: {self.command} {self.args[:80]} -> {self.result[:80]}"
        return " ".join(line.split())


def execution_system_prompt(
    profile: AgentProfile,
    commands: list[dict[str, str]],
    prompt_tokens: int,
    *,
    instructions: str = "",
    read_only: bool = False,
) -> str:
    """The execution agent's system prompt: its profile, the project's instructions (marked
    as such), the commands and the rules. It may take at most half the prompt budget, so that
    every step keeps room for its task."""
    prompt = prompts.render(
        "execution_system",
        name=profile.name,
        role=profile.role,
        goals=profile.goals,
        commands=commands,
        instructions=instructions,
        read_only=read_only,
    )
    tokens = estimate_tokens(prompt)
    if tokens > prompt_tokens // 2:
        parts = (
            "role, goals, commands and AGENTS.md" if instructions else "role, goals and commands"
        )
        raise ConfigError(
            f"The agent's {parts} make a system prompt of about "
            f"{tokens} tokens, more than half the prompt budget of {prompt_tokens} "
            "(AUTOAGENT_PROMPT_TOKENS): shorten the role or the goals, or raise the budget."
        )
    return prompt


NO_TASK = "No open tasks are left: check the goals against what was done; finish if they are met."
FILE_NAME = re.compile(r"(?<![\w/.-])(?:[\w-]+/)*[\w-]{2,}\.[A-Za-z][A-Za-z0-9]{0,7}\b")


def goal_files(goals: Sequence[str]) -> tuple[str, ...]:
    """The file names the goals mention (`hello.txt`, `notes/summary.md`), in order."""
    return tuple(dict.fromkeys(m.group() for goal in goals for m in FILE_NAME.finditer(goal)))


class ExecutionAgent:
    role = "execution"

    def __init__(
        self,
        caller: ModelCaller,
        model: str,
        profile: AgentProfile,
        commands: Registry,
        prompt_tokens: int = 6000,
        *,
        instructions: str = "",
        read_only: bool = False,
        small_model: bool = False,
    ) -> None:
        self.caller = caller
        self.model = model
        # A tiny model held by a grammar (the bundled one) gets the narrowest choices: paths
        # among the files its goals name, and only `finish` once no task is open.
        self.small_model = small_model
        self.prompt_tokens = prompt_tokens
        self.profile = profile
        self.instructions = instructions  # the project's AGENTS.md, marked (instructions.py)
        self.read_only = read_only
        self._notes: list[str] = []  # about the last reply, for the next prompt
        self.use_commands(commands)

    def use_commands(self, commands: Registry) -> None:
        """Offer these commands from now on, in the prompt and in the schema the reply is held
        to (the list changes during a run when an MCP server stops)."""
        offered = [(c.name, c.args_schema()) for c in commands]
        files = goal_files(self.profile.goals) if self.small_model else ()
        self.reply_schema = execution_schema(offered, paths=files)
        finish = [(name, args) for name, args in offered if name == "finish"]
        self._finish_schema = execution_schema(finish) if self.small_model and finish else None
        # Stable across steps, so endpoints can cache this prefix.
        self.system_prompt = execution_system_prompt(
            self.profile,
            commands.describe(),
            self.prompt_tokens,
            instructions=self.instructions,
            read_only=self.read_only,
        )

    def propose(
        self,
        *,
        task: str,
        open_tasks: Sequence[str],
        memories: Sequence[str],
        recent_steps: Sequence[StepView],
        earlier_steps: Sequence[str] = (),
        notices: Sequence[str] = (),
        feedback: str | None = None,
    ) -> ExecutionReply:
        parts = {
            "task": task[:TASK_CHARS],
            "open_tasks": list(open_tasks)[:MAX_OPEN_TASKS_SHOWN],
            "memories": list(memories),
            "recent_steps": list(recent_steps),
            "earlier_steps": list(earlier_steps),
            "notices": [*self._notes, *notices],
            "feedback": feedback,
        }
        self._notes = []
        user = self._fit(parts)
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": user},
        ]
        schema = self.reply_schema
        if task == NO_TASK and self._finish_schema is not None:
            schema = self._finish_schema
        reply = self.caller.ask(self.role, messages, self.model, ExecutionReply, schema)
        if reply.dropped:
            log.warning("the reply held several commands; dropped %s", reply.dropped)
            self._notes.append(
                f"Your last reply held {len(reply.dropped) + 1} commands: only the first, "
                f"{reply.command.name}, was used; {', '.join(reply.dropped)} did not run. "
                "Reply with exactly one command each time."
            )
        return reply

    def _fit(self, parts: dict[str, Any]) -> str:
        """Render the step prompt within the token budget, giving up the least useful first:
        the least relevant memories, then the oldest full steps (each kept as a one-line
        summary, down to one full step), then the oldest summaries."""
        # A margin, as the estimate is only close to what the server will count.
        budget = int(self.prompt_tokens * 0.95) - self.caller.estimate(self.system_prompt)
        while True:
            user = prompts.render("execution_user", **parts)
            if self.caller.estimate(user) <= budget:
                return user
            if parts["memories"]:
                parts["memories"] = parts["memories"][:-1]
            elif len(parts["recent_steps"]) > 1:
                oldest, *parts["recent_steps"] = parts["recent_steps"]
                parts["earlier_steps"] = [*parts["earlier_steps"], oldest.summary()]
            elif parts["earlier_steps"]:
                parts["earlier_steps"] = parts["earlier_steps"][1:]
            elif len(parts["open_tasks"]) > 3:
                parts["open_tasks"] = parts["open_tasks"][:3]
            else:
                return user  # nothing left to drop: the task and one step must go


class TaskCreationAgent:
    """Task creation and prioritization, two roles in one call: the new tasks a result calls
    for, and the order of the whole open list (which the task list applies without ever
    losing or inventing a task)."""

    role = "task-creation"

    def __init__(self, caller: ModelCaller, model: str, goals: Sequence[str]) -> None:
        self.caller = caller
        self.model = model
        self.goals = list(goals)

    def create(
        self, task: str, result: str, open_tasks: Sequence[Task], next_id: int
    ) -> TaskCreationReply:
        prompt = prompts.render(
            "task_creation",
            goals=self.goals,
            task=task,
            result=result,
            open_tasks=list(open_tasks),
            next_id=next_id,
        )
        return self.caller.ask(
            self.role, [{"role": "user", "content": prompt}], self.model, TaskCreationReply
        )
