"""The benchmarks import what they measure: a move in the package must not break them unseen."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCH.glob("*.py")))
def test_every_benchmark_module_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")
