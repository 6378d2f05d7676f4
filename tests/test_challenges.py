"""The offline challenge suite: its tasks and checks agree, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.challenges import Check, load_tasks, run_suite

pytestmark = pytest.mark.slow


def test_the_scripted_model_passes_every_challenge(tmp_path: Path) -> None:
    tasks = load_tasks()
    assert len(tasks) >= 8
    assert {t.level for t in tasks} >= {"trivial", "easy", "hard"}
    outcomes = run_suite("scripted", 1, 8, tasks, keep=tmp_path, timeout=120)
    failed = [o.task for o in outcomes if not o.passed or o.exit_code != 0]
    assert failed == []


def test_checks_fail_on_wrong_work(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("Hello, World!\n")
    (tmp_path / "sorted.csv").write_text("name,age\nAmir,23\nDmitri,19\n")
    assert Check("hello.txt", contains="hello world").passes(tmp_path)
    assert not Check("hello.txt", contains="hello there").passes(tmp_path)
    assert not Check("hello.txt", equals="hello world").passes(tmp_path)
    assert not Check("sorted.csv", lines=("name,age", "Dmitri,19", "Amir,23")).passes(tmp_path)
    assert not Check("missing.txt", contains="x").passes(tmp_path)
