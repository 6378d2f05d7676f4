"""The flags `run` and `resume` share, as typer reads them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

Continuous = Annotated[bool, typer.Option("--continuous", "-c", help="Never ask before a command.")]


ContinuousLimit = Annotated[
    int | None,
    typer.Option("--continuous-limit", "-l", min=1, help="Continuous for N commands, then stop."),
]


MaxSteps = Annotated[int | None, typer.Option("--max-steps", min=1, help="Hard cap on steps.")]


Debug = Annotated[bool, typer.Option("--debug", help="Log every prompt and reply to a file.")]


SkipReprompt = Annotated[
    bool, typer.Option("--skip-reprompt", "-y", help="Use ai_settings.yaml without asking.")
]


Workspace = Annotated[
    Path | None, typer.Option("--workspace", help="The only folder file commands may touch.")
]


Model = Annotated[str | None, typer.Option("--model", help="Model of the execution agent.")]


FastModel = Annotated[
    str | None, typer.Option("--fast-model", help="Model for task creation and prioritization.")
]


Budget = Annotated[
    float | None,
    typer.Option("--budget", min=0.0, help="Stop when this many US dollars are spent."),
]


Llm = Annotated[
    str | None,
    typer.Option("--llm", help="openai (an API endpoint), local (a GGUF file) or auto."),
]


ModelPath = Annotated[
    Path | None, typer.Option("--model-path", help="A GGUF model file to run on this machine.")
]


MemoryUrl = Annotated[
    str | None,
    typer.Option("--memory-url", help="Keep memory on a Chroma server, e.g. http://host:8000."),
]


McpConfig = Annotated[
    Path | None,
    typer.Option("--mcp-config", help="MCP servers to use (default: .mcp.json here, if approved)."),
]


AllowHighRisk = Annotated[
    bool,
    typer.Option(
        "--allow-high-risk",
        help="In continuous mode, also run high-risk commands (delete, execute) without asking.",
    ),
]


AllowNetwork = Annotated[
    bool,
    typer.Option("--allow-network", help="Let the programs the agent runs use the network."),
]


WaitForApproval = Annotated[
    bool,
    typer.Option(
        "--wait-for-approval",
        help="In continuous mode, hold what needs a human until someone answers from another "
        "shell or the web console, instead of refusing it.",
    ),
]


ApprovalTimeout = Annotated[
    float | None,
    typer.Option(
        "--approval-timeout",
        min=1.0,
        help="Deny a request no one answered within this many seconds.",
    ),
]


Notify = Annotated[
    str | None,
    typer.Option("--notify", help="POST each request for a human to this URL (a webhook)."),
]


NoSandbox = Annotated[
    bool,
    typer.Option(
        "--no-sandbox",
        help="Run programs unconfined, with everything your user can reach (said at each one).",
    ),
]


class OutputFormat(StrEnum):
    TEXT = "text"  # the terminal's view
    JSON = "json"  # JSON Lines on stdout, one object per event (stream.py)


Output = Annotated[
    OutputFormat,
    typer.Option(
        "--output",
        help="text, or json: one JSON object per event on stdout (`autoagent schema events`), "
        "a one-line summary on stderr.",
    ),
]


ReadOnly = Annotated[
    bool | None,
    typer.Option(
        "--read-only/--no-read-only",
        help="Offer only commands that change nothing; the run ends with its findings and plan "
        "in a file. A read-only run resumes read-only unless --no-read-only.",
    ),
]


# The flags `run` and `resume` share, each a parameter named as the setting it sets.
RUN_FLAGS = (
    "ai_settings",
    "max_steps",
    "debug",
    "skip_reprompt",
    "workspace",
    "model",
    "fast_model",
    "budget",
    "llm",
    "model_path",
    "memory_url",
    "allow_network",
    "mcp_config",
    "wait_for_approval",
    "approval_timeout",
    "notify_url",
)
