"""The results table on the terminal, and bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .common import BENCH_DIR, Figure
from .sections import replace_section

NOTES = BENCH_DIR / "notes.md"  # what dominates each figure; appended to RESULTS.md
PARTS = ["prompt", "parse", "memory_query", "memory_write", "command", "journal", "checkpoint"]


def verdict(figure: Figure) -> str:
    return "" if figure.ok is None else ("pass" if figure.ok else "FAIL")


def print_table(console: Console, figures: list[Figure]) -> None:
    table = Table("section", "figure", "value", "target", "", "note", show_lines=False)
    for f in figures:
        style = "" if f.ok is None else ("green" if f.ok else "bold red")
        table.add_row(
            f.section,
            f.name,
            f.shown(),
            f.target,
            f"[{style}]{verdict(f)}[/]" if style else "",
            f.note,
        )
    console.print(table)


def _ms(seconds: Any) -> str:
    return f"{float(seconds) * 1000:.1f}"


def write_markdown(
    figures: list[Figure],
    machine: dict[str, str],
    extra: dict[str, Any],
    command: str,
    seconds: float,
) -> Path:
    lines = [
        "## The harness suite",
        "",
        f"Made by `{command}` in {seconds:.0f} s. Every figure is a median over repeated runs;"
        " ratios are measured within the same run.",
        "",
        "### Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores",
        f"- Python {machine['python']} on {machine['system']}",
        f"- Date: {machine['date']}",
        f"- Load average (1, 5, 15 min) at the start: {machine['load']};"
        f" at the end: {machine.get('load_end', '?')}",
        "",
        "### Figures",
        "",
        "| section | figure | value | target | result | note |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.section} | {f.name} | {f.shown()} | {f.target} | {verdict(f)} | {f.note} |"
        )
    breakdown = extra.get("breakdown") or []
    if breakdown:
        lines += [
            "",
            "### Where a step's harness time goes (ms, median per step)",
            "",
            "With the instant model. `other` is the loop's own bookkeeping between the timed parts"
            " (task list, loop detector, events). The memory write on the step is only handing"
            " the memory to the background writer; `background write` is that writer's time per"
            " step (embedding the memory and adding it to Chroma), and `close wait` how long"
            " `Memory.close()` waited at the end of the run for the writes still queued.",
            "",
            "| memories | harness | " + " | ".join(PARTS) + " | display | other "
            "| background write | close wait | query: embed | query: search | store built in |",
            "|---" * (len(PARTS) + 9) + "|",
        ]
        for row in breakdown:
            built = row.get("built")
            lines.append(
                f"| {row['size']:,} | {_ms(row['harness'])} | "
                + " | ".join(_ms(row[p]) for p in PARTS)
                + f" | {_ms(row['display'])} | {_ms(row['other'])} | {_ms(row['background_write'])}"
                f" | {_ms(row['close_wait'])} | {_ms(row['query_embed'])}"
                f" | {_ms(row['query_search'])} | {f'{built:.0f} s' if built else '-'} |"
            )
    sizes = extra.get("prompt_sizes") or []
    if sizes:
        marks = [s for s in (1, 2, 5, 10, 20, 30, 50, 75, 100) if s <= len(sizes)]
        lines += [
            "",
            "### Execution prompt size by step (tokens, chars / 4)",
            "",
            "| step | " + " | ".join(str(s) for s in marks) + " |",
            "|---" * (len(marks) + 1) + "|",
            "| tokens | " + " | ".join(f"{sizes[s - 1]:,}" for s in marks) + " |",
        ]
    if NOTES.exists():
        lines += ["", NOTES.read_text(encoding="utf-8").strip()]
    return replace_section("suite", "\n".join(lines))
