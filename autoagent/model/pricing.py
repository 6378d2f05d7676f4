"""What model calls cost, from the API's usage figures and a price table."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .llm import Usage

# US dollars per million (input, output) tokens. Overridable with AUTOAGENT_PRICES.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.0),
    "gpt-4o-mini": (0.15, 0.60),
    "o3": (2.0, 8.0),
    "o4-mini": (1.10, 4.40),
    "gpt-4-turbo": (10.0, 30.0),
    "gpt-4": (30.0, 60.0),
    "gpt-3.5-turbo": (0.50, 1.50),
}


def price_of(model: str, table: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The price of `model`, matching dated names such as gpt-4o-2024-08-06 to gpt-4o."""
    if model in table:
        return table[model]
    candidates = [name for name in table if model.startswith(name + "-")]
    return table[max(candidates, key=len)] if candidates else None


def cost_of(
    model: str, prompt_tokens: int, completion_tokens: int, table: dict[str, tuple[float, float]]
) -> float:
    """Dollars for these tokens of `model`; 0 for a model with no price."""
    price = price_of(model, table)
    return 0.0 if price is None else _dollars(price, prompt_tokens, completion_tokens)


def _dollars(price: tuple[float, float], prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6  # USD per million


class Spend(BaseModel):
    """Tokens and dollars used so far in a run."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    calls: int = 0
    unpriced_models: set[str] = Field(default_factory=set)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, model: str, usage: Usage, table: dict[str, tuple[float, float]]) -> float | None:
        """Count one call; its cost in dollars, or None when the model has no price."""
        self.calls += 1
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        price = price_of(model, table)
        if price is None:
            self.unpriced_models.add(model)
            return None
        cost = _dollars(price, usage.prompt_tokens, usage.completion_tokens)
        self.cost += cost
        return cost
