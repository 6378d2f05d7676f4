"""How much harm a command can do: what the policy, the gate and every screen speak of."""

from __future__ import annotations

from enum import StrEnum


class Risk(StrEnum):
    LOW = "low"  # read, list, search, browse, memory
    MEDIUM = "medium"  # write, append
    HIGH = "high"  # delete, execute code or shell, downloads
