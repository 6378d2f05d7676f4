"""Prompt tokens per step over a long scripted run, model calls per step, and the tokens a fixed
scenario takes to finish. The local server counts a token per four characters."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from autoagent.model.testing import FakeOpenAIServer, role_of

from .common import Figure, drive, make_loop, script_server

RATIO_TARGET = 1.5
CALLS_TARGET = 2.0


def prompt_tokens(request: dict[str, Any]) -> int:
    return sum(len(m.get("content", "")) for m in request["messages"]) // 4


def long_run(steps: int) -> dict[str, Any]:
    with FakeOpenAIServer() as server, tempfile.TemporaryDirectory() as tmp:
        script_server(server, steps, finish=False)
        loop = make_loop(Path(tmp), server, max_steps=steps)
        sample = drive(loop)
        assert sample.end is not None and sample.end.steps == steps, sample.end
        sizes = [prompt_tokens(r) for r in server.requests_for("execution")]
        roles = [role_of(r) for r in server.requests]
    return {
        "sizes": sizes,
        "calls": len(roles) / steps,
        "by_role": {role: roles.count(role) / steps for role in sorted(set(roles))},
        "budget": loop.settings.prompt_tokens,
    }


def fixed_scenario() -> dict[str, Any]:
    """Ten steps that write, read and append to files, then finish."""
    with FakeOpenAIServer() as server, tempfile.TemporaryDirectory() as tmp:
        script_server(server, 10)
        sample = drive(make_loop(Path(tmp), server))
        assert sample.end is not None and sample.end.status == "finished", sample.end
        spend = sample.end.spend
    return {"tokens": spend.total_tokens, "prompt": spend.prompt_tokens, "calls": spend.calls}


def run(quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    steps = 30 if quick else 100
    found = long_run(steps)
    sizes = found["sizes"]
    ratio = sizes[-1] / sizes[9]
    by_role = ", ".join(f"{role} {n:.2f}" for role, n in found["by_role"].items())
    scenario = fixed_scenario()
    figures = [
        Figure("Prompt", "execution prompt at step 10", sizes[9], "tokens"),
        Figure(
            "Prompt",
            f"execution prompt at step {steps} (largest {max(sizes):,})",
            sizes[-1],
            "tokens",
            note=f"budget {found['budget']:,} tokens",
        ),
        Figure(
            "Prompt",
            f"prompt step {steps} / step 10",
            ratio,
            "x",
            f"<= {RATIO_TARGET}x",
            ratio <= RATIO_TARGET,
        ),
        Figure(
            "Prompt",
            f"model calls per step ({steps}-step run)",
            found["calls"],
            "calls",
            f"<= {CALLS_TARGET:.0f}",
            found["calls"] <= CALLS_TARGET,
            note=by_role,
        ),
        Figure(
            "Prompt",
            "tokens to finish the 10-step scenario",
            scenario["tokens"],
            "tokens",
            note=f"{scenario['prompt']:,} of them prompt, in {scenario['calls']} calls",
        ),
    ]
    return figures, {"sizes": sizes}
