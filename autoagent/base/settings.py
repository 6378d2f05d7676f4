"""One explicit Settings object: defaults < .env < environment < flags.

This is the only module that reads the process environment.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError, describe_validation, not_utf8

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B?)", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _env(name: str, **kwargs: Any) -> Any:
    """A field that may be set by the environment variable `name`."""
    return Field(json_schema_extra={"env": name}, **kwargs)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The model: "openai" is any OpenAI-compatible endpoint, "local" a GGUF file run in-process;
    # "auto" takes the endpoint when one is configured, else the bundled local model.
    llm: Literal["auto", "openai", "local"] = _env("AUTOAGENT_LLM", default="auto")
    model_path: Path | None = _env("AUTOAGENT_MODEL_PATH", default=None)
    local_context: int = _env("AUTOAGENT_LOCAL_CONTEXT", default=8192, ge=512)
    openai_api_key: str | None = _env("OPENAI_API_KEY", default=None)
    openai_base_url: str | None = _env("OPENAI_BASE_URL", default=None)
    model: str = _env("AUTOAGENT_MODEL", default="gpt-4o-mini")
    fast_model: str = _env("AUTOAGENT_FAST_MODEL", default="gpt-4o-mini")
    request_timeout: float = _env("AUTOAGENT_REQUEST_TIMEOUT", default=120.0, gt=0)
    max_retries: int = _env("AUTOAGENT_MAX_RETRIES", default=4, ge=0)
    max_reply_tokens: int | None = _env("AUTOAGENT_MAX_REPLY_TOKENS", default=None, ge=16)

    # Where things live.
    home: Path = _env("AUTOAGENT_HOME", default=Path(".autoagent"))
    workspace: Path = _env("AUTOAGENT_WORKSPACE", default=Path("workspace"))
    ai_settings: Path = _env("AUTOAGENT_AI_SETTINGS", default=Path("ai_settings.yaml"))

    # How the run goes.
    continuous: bool = _env("AUTOAGENT_CONTINUOUS", default=False)
    continuous_limit: int | None = _env("AUTOAGENT_CONTINUOUS_LIMIT", default=None, ge=1)
    max_steps: int = _env("AUTOAGENT_MAX_STEPS", default=100, ge=1)
    skip_reprompt: bool = _env("AUTOAGENT_SKIP_REPROMPT", default=False)
    debug: bool = _env("AUTOAGENT_DEBUG", default=False)
    recent_steps: int = _env("AUTOAGENT_RECENT_STEPS", default=4, ge=1)
    budget: float | None = _env("AUTOAGENT_BUDGET", default=None, gt=0)
    # Extra or corrected prices, as JSON: {"model": [input, output]} in USD per million tokens.
    prices: dict[str, tuple[float, float]] = _env("AUTOAGENT_PRICES", default_factory=dict)
    prompt_tokens: int = _env("AUTOAGENT_PROMPT_TOKENS", default=6000, ge=1000)
    stall_steps: int = _env("AUTOAGENT_STALL_STEPS", default=8, ge=2)
    policy_file: Path | None = _env("AUTOAGENT_POLICY_FILE", default=None)
    # Only commands that change nothing; the run ends with its findings and plan in a file.
    read_only: bool = _env("AUTOAGENT_READ_ONLY", default=False)
    # Files larger than this are not kept by the captures that make steps rewindable.
    rewind_file_limit: int = _env("AUTOAGENT_REWIND_FILE_LIMIT", default=50 << 20, ge=0)
    # Hooks (human/hooks_config.py): default .autoagent/hooks.json here, if there is one.
    hooks_file: Path | None = _env("AUTOAGENT_HOOKS_FILE", default=None)

    # Humans elsewhere (human/requests.py): continuous runs hold what needs a human until someone
    # answers, instead of refusing it; an unanswered request is denied after the timeout.
    wait_for_approval: bool = _env("AUTOAGENT_WAIT_FOR_APPROVAL", default=False)
    approval_timeout: float | None = _env("AUTOAGENT_APPROVAL_TIMEOUT", default=None, gt=0)
    notify_url: str | None = _env("AUTOAGENT_NOTIFY_URL", default=None)
    # Where the web console (`autoagent serve`) is reached, for the links in notifications.
    console_url: str = _env("AUTOAGENT_CONSOLE_URL", default="http://127.0.0.1:8765")

    # OpenTelemetry traces over OTLP/HTTP, off unless an endpoint is set the standard way; the
    # SDK reads the other OTEL_* variables (headers, timeout, service name) itself.
    otel_endpoint: str | None = _env("OTEL_EXPORTER_OTLP_ENDPOINT", default=None)
    otel_traces_endpoint: str | None = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default=None)
    otel_sdk_disabled: str | None = _env("OTEL_SDK_DISABLED", default=None)
    otel_traces_exporter: str | None = _env("OTEL_TRACES_EXPORTER", default=None)
    # Prompts and replies in the model calls' spans (they may hold what the agent read).
    otel_capture_prompts: bool = _env("AUTOAGENT_OTEL_CAPTURE_PROMPTS", default=False)

    # MCP servers: their config file (default: .mcp.json here, if there is one).
    mcp_config: Path | None = _env("AUTOAGENT_MCP_CONFIG", default=None)
    mcp_startup_timeout: float = _env("AUTOAGENT_MCP_STARTUP_TIMEOUT", default=30.0, gt=0)
    # Environment variables a project's own .mcp.json may read with ${VAR} (a file the user
    # names reads any); comma-separated in the environment.
    mcp_env: tuple[str, ...] = _env("AUTOAGENT_MCP_ENV", default=())

    # Memory.
    embeddings: Literal["local", "openai"] = _env("AUTOAGENT_EMBEDDINGS", default="local")
    openai_embedding_model: str = _env(
        "AUTOAGENT_OPENAI_EMBEDDING_MODEL", default="text-embedding-3-small"
    )
    memory_recall: int = _env("AUTOAGENT_MEMORY_RECALL", default=3, ge=0)
    memory_url: str | None = _env("AUTOAGENT_MEMORY_URL", default=None)

    # Web.
    allow_private_urls: bool = _env("AUTOAGENT_ALLOW_PRIVATE_URLS", default=False)
    search_results: int = _env("AUTOAGENT_SEARCH_RESULTS", default=8, ge=1, le=50)
    search_region: str = _env("AUTOAGENT_SEARCH_REGION", default="us-en")
    web_timeout: float = _env("AUTOAGENT_WEB_TIMEOUT", default=20.0, gt=0)
    max_download_bytes: int = _env("AUTOAGENT_MAX_DOWNLOAD_BYTES", default=5_000_000, ge=1024)
    # Proxy for browsing and search ("http://host:port"); the environment's proxy variables
    # are not used, so that no setting outside this object changes where requests go.
    web_proxy: str | None = _env("AUTOAGENT_WEB_PROXY", default=None)

    # A fleet of runs on Temporal (`autoagent fleet`, fleet/): where its server is, its task
    # queue, how soon a silent worker's runs move on, how often a failing run is tried, a cap
    # on runs at once across the fleet (0: none), and where runs' workspaces go by default.
    temporal_address: str = _env("AUTOAGENT_TEMPORAL_ADDRESS", default="127.0.0.1:7233")
    temporal_namespace: str = _env("AUTOAGENT_TEMPORAL_NAMESPACE", default="default")
    temporal_api_key: str | None = _env("AUTOAGENT_TEMPORAL_API_KEY", default=None)
    temporal_tls: bool = _env("AUTOAGENT_TEMPORAL_TLS", default=False)
    fleet_queue: str = _env("AUTOAGENT_FLEET_QUEUE", default="autoagent", min_length=1)
    fleet_heartbeat_timeout: float = _env("AUTOAGENT_FLEET_HEARTBEAT_TIMEOUT", default=30.0, ge=5)
    fleet_attempts: int = _env("AUTOAGENT_FLEET_ATTEMPTS", default=5, ge=1)
    fleet_max_runs: int = _env("AUTOAGENT_FLEET_MAX_RUNS", default=0, ge=0)
    fleet_workspaces: Path = _env("AUTOAGENT_FLEET_WORKSPACES", default=Path("workspaces"))

    # Running code and programs.
    command_timeout: float = _env("AUTOAGENT_COMMAND_TIMEOUT", default=120.0, gt=0)
    max_output_bytes: int = _env("AUTOAGENT_MAX_OUTPUT_BYTES", default=10_000, ge=1000)
    shell_enabled: bool = _env("AUTOAGENT_SHELL_ENABLED", default=False)
    # sh: a real `sh -c` command line, in the sandbox; allow/deny: one program, no shell,
    # judged against the program list.
    shell_mode: Literal["sh", "allow", "deny"] = _env("AUTOAGENT_SHELL_MODE", default="sh")
    # Program names for the allow- or denylist; None means the built-in list for the mode.
    # The environment gives them comma-separated: AUTOAGENT_SHELL_PROGRAMS=ls,cat,grep
    shell_programs: tuple[str, ...] | None = _env("AUTOAGENT_SHELL_PROGRAMS", default=None)
    # Names of environment variables the agent's children may see, besides PATH, HOME, LANG...
    child_env: tuple[str, ...] = _env("AUTOAGENT_CHILD_ENV", default=())

    # The sandbox of every program the agent starts (see sandbox.py).
    sandbox: Literal["auto", "bwrap", "landlock", "none"] = _env(
        "AUTOAGENT_SANDBOX", default="auto"
    )
    allow_network: bool = _env("AUTOAGENT_ALLOW_NETWORK", default=False)
    # Paths a confined program may read although they are hidden (the home, the data folder).
    sandbox_readable: tuple[Path, ...] = _env("AUTOAGENT_SANDBOX_READABLE", default=())
    # Limits; 0 means none. Sizes in bytes, or with a unit: 512M, 2G.
    sandbox_memory: int = _env("AUTOAGENT_SANDBOX_MEMORY", default=2 << 30, ge=0)
    sandbox_cpu_seconds: int = _env("AUTOAGENT_SANDBOX_CPU_SECONDS", default=600, ge=0)
    sandbox_file_size: int = _env("AUTOAGENT_SANDBOX_FILE_SIZE", default=1 << 30, ge=0)
    sandbox_processes: int = _env("AUTOAGENT_SANDBOX_PROCESSES", default=256, ge=0)

    @field_validator("shell_programs", "child_env", "mcp_env", "sandbox_readable", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name for name in re.split(r"[,\s]+", value) if name)
        return value

    @field_validator("sandbox_memory", "sandbox_file_size", "rewind_file_limit", mode="before")
    @classmethod
    def _parse_size(cls, value: Any) -> Any:
        if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
            number, unit = match.groups()
            return int(float(number) * _UNITS[unit.upper()[:1]])
        return value

    @field_validator("web_proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://", "socks5://")):
            raise ValueError("give the proxy as a URL, e.g. http://proxy.example:3128")
        return value or None

    @field_validator("notify_url", "console_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("give it as an http:// or https:// URL")
        return value or None

    @field_validator("prices", mode="before")
    @classmethod
    def _parse_prices(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f'not JSON like {{"model": [0.15, 0.6]}} ({exc})') from exc
        return value

    @property
    def endpoint_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def traces_endpoint(self) -> str | None:
        """Where traces are sent (the OTLP/HTTP traces URL), or None when they are off."""
        exporters = re.split(r"[,\s]+", (self.otel_traces_exporter or "otlp").lower())
        if (self.otel_sdk_disabled or "").strip().lower() == "true" or "none" in exporters:
            return None
        if self.otel_traces_endpoint:
            return self.otel_traces_endpoint
        if self.otel_endpoint:
            return self.otel_endpoint.rstrip("/") + "/v1/traces"
        return None


def user_homes() -> list[Path]:
    """The user's home folders: from the password database, and $HOME when it differs."""
    import pwd

    homes = [pwd.getpwuid(os.getuid()).pw_dir, os.environ.get("HOME")]
    found = [Path(os.path.realpath(home)) for home in homes if home]
    return [home for home in dict.fromkeys(found) if home != Path("/")]


def user_runtime_folder() -> Path | None:
    """The user's runtime folder ($XDG_RUNTIME_DIR: the session bus, the keyring and ssh-agent
    sockets), when it is set."""
    folder = os.environ.get("XDG_RUNTIME_DIR")
    return Path(os.path.realpath(folder)) if folder else None


def env_names() -> dict[str, str]:
    """Field name -> environment variable name, for every setting."""
    return {
        name: str(field.json_schema_extra["env"])  # type: ignore[index]
        for name, field in Settings.model_fields.items()
    }


def process_environment() -> dict[str, str]:
    """This process's environment, for what refers to it by name (`${VAR}` in the MCP config)."""
    return dict(os.environ)


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_file: Path | None = Path(".env"),
) -> Settings:
    """Build Settings from flags (None means "not given"), the environment and `.env`."""
    environ = os.environ if environ is None else environ
    dotenv = {}
    if dotenv_file is not None and dotenv_file.is_file():
        try:
            dotenv = {
                k: v
                for k, v in dotenv_values(dotenv_file, encoding="utf-8").items()
                if v is not None
            }
        except UnicodeDecodeError as exc:
            raise ConfigError(f"Cannot read the settings: {not_utf8(dotenv_file, exc)}") from exc
        except OSError as exc:
            raise ConfigError(f"Cannot read the settings in {dotenv_file}: {exc}.") from exc
    flags = flags or {}
    values: dict[str, Any] = {}
    for field, env_name in env_names().items():
        if flags.get(field) is not None:
            values[field] = flags[field]
        elif raw := environ.get(env_name) or dotenv.get(env_name):
            values[field] = raw
    try:
        return Settings(**values)
    except ValidationError as exc:
        names = env_names()
        problems = describe_validation(exc, lambda field: names.get(field, field))
        raise ConfigError(
            f"Invalid setting ({problems}). Fix it in .env, the environment or the flags."
        ) from exc
