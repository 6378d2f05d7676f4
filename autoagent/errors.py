"""The one exception tree of autoagent. Every message says how to fix the problem."""


class AutoAgentError(Exception):
    """Base of every error the harness raises on purpose; the CLI catches it once."""


class ConfigError(AutoAgentError):
    """A setting, flag or profile is missing or invalid."""


class ModelError(AutoAgentError):
    """The model endpoint could not be used (unreachable, refused, unknown model)."""


class ReplyError(AutoAgentError):
    """The model kept replying with something that is not the expected JSON."""


class MemoryStoreError(AutoAgentError):
    """The vector memory could not be opened, read or written."""


class JournalError(AutoAgentError):
    """A run's journal or checkpoint could not be read or written."""


class CommandError(AutoAgentError):
    """A command failed; its message becomes an observation for the model."""


class RefusedError(CommandError):
    """A command was refused by the sandbox or by policy; nothing ran."""
