"""The parts a run is built from: its chat model (an API or a local GGUF model), its
embedder and memory, and the prices its budget is kept by."""

from __future__ import annotations

from ..base.errors import ConfigError
from ..base.settings import Settings
from ..model.llm import ChatModel, OpenAIChatModel, OpenAIEmbedder
from ..model.pricing import PRICES, price_of
from ..store.embeddings import Embedder, LocalEmbedder, WordEmbedder, transformer_runs_here
from ..store.memory import Memory

NO_ENDPOINT = (
    "No model endpoint is configured: set OPENAI_API_KEY (for OpenAI) or OPENAI_BASE_URL "
    "(for a compatible server) in .env or the environment, or give a GGUF file with "
    "--model-path; .env.template lists every setting."
)
BUNDLED_MODEL_NOTE = (
    "No API is configured, so autoagent runs the bundled SmolLM2-135M model on this machine. "
    "It is tiny: fine for trying the tool offline, poor at real work. For real work point it at "
    "a bigger GGUF (--model-path FILE.gguf) or an API (OPENAI_API_KEY or OPENAI_BASE_URL in .env)."
)


def price_table(settings: Settings) -> dict[str, tuple[float, float]]:
    """OpenAI's prices apply to OpenAI only; other servers count tokens unless priced."""
    official = not uses_local_model(settings) and (
        settings.openai_base_url is None or "api.openai.com" in settings.openai_base_url
    )
    return (PRICES if official else {}) | settings.prices


def uses_local_model(settings: Settings) -> bool:
    if settings.llm == "auto":
        return settings.model_path is not None or not settings.endpoint_configured
    return settings.llm == "local"


def build_model(settings: Settings) -> tuple[ChatModel, list[str]]:
    """The chat model the settings ask for, checked; and notes for the human about it."""
    if uses_local_model(settings):
        return build_local_model(settings)
    if not settings.endpoint_configured:
        raise ConfigError(NO_ENDPOINT)
    model = OpenAIChatModel(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        timeout=settings.request_timeout,
        max_retries=settings.max_retries,
        max_reply_tokens=settings.max_reply_tokens,
    )
    model.check()
    return model, []


def build_local_model(settings: Settings) -> tuple[ChatModel, list[str]]:
    """A GGUF model in a process of its own (started and checked here), and notes about it."""
    from ..model.local_llm import SMALL_MODEL_LIMITS, bundled_model_path
    from ..model.local_process import LocalModelConfig, start_local_model

    if settings.model_path is not None:
        config = LocalModelConfig(
            settings.model_path.expanduser(), n_ctx=settings.local_context, max_tokens=4096
        )
        notes = []
    else:
        path = bundled_model_path()
        if path is None:
            raise ConfigError(NO_ENDPOINT)
        config = LocalModelConfig(path, n_ctx=settings.local_context, **SMALL_MODEL_LIMITS)
        notes = [BUNDLED_MODEL_NOTE]
    log_file = settings.home.expanduser() / "logs" / "local-model.log"
    return start_local_model(config, log_file, settings.request_timeout), notes


def close_model(model: ChatModel) -> None:
    """Stop what a model runs of its own (a local model's process); other models hold nothing."""
    close = getattr(model, "close", None)
    if close is not None:
        close()


def build_embedder(settings: Settings) -> Embedder:
    if settings.embeddings == "openai":
        if not settings.endpoint_configured:
            raise ConfigError(
                "AUTOAGENT_EMBEDDINGS=openai needs OPENAI_API_KEY or OPENAI_BASE_URL."
            )
        return OpenAIEmbedder(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            model=settings.openai_embedding_model,
        )
    return LocalEmbedder() if transformer_runs_here() else WordEmbedder()


def open_memory(settings: Settings, agent_name: str) -> Memory:
    if settings.memory_url:
        return Memory.open_server(settings.memory_url, agent_name, build_embedder(settings))
    # chromadb and the embedding models load while the run starts: a new store is not even
    # needed before the first memory is written.
    return Memory.open_local(
        settings.home / "memory", agent_name, build_embedder(settings), background=True
    )


def open_memory_to_read(settings: Settings, agent_name: str) -> Memory:
    """The agent's memory for `memory list` and `search`: a local store is read from a copy,
    so reading never writes it."""
    if settings.memory_url:
        return Memory.open_server(settings.memory_url, agent_name, build_embedder(settings))
    return Memory.open_copy(settings.home / "memory", agent_name, build_embedder(settings))


def check_budget_prices(settings: Settings, prices: dict[str, tuple[float, float]]) -> None:
    """A budget is only hard when every model it pays for has a price."""
    if settings.budget is None:
        return
    if uses_local_model(settings):
        raise ConfigError("--budget is for paid APIs; a local model costs nothing per token.")
    for name in {settings.model, settings.fast_model}:
        if price_of(name, prices) is None:
            raise ConfigError(
                f"--budget cannot be kept: model {name!r} has no known price here. Give it "
                f"one with AUTOAGENT_PRICES='{{\"{name}\": [input, output]}}' (USD per million "
                "tokens)."
            )
