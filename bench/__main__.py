"""Run the benchmark suite: `python -m bench` (about 10 minutes) or `python -m bench --quick`."""

from __future__ import annotations

import argparse
import os
import sys
import time

from rich.console import Console

from . import report, retrieval, startup, steps, tokens
from .common import Figure, machine


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="A smoke run: fewer repeats, memories up to 1k."
    )
    parser.add_argument(
        "--no-write", action="store_true", help="Print the table only; leave RESULTS.md alone."
    )
    options = parser.parse_args()
    console = Console(highlight=False)
    started = time.perf_counter()
    host = machine()
    figures: list[Figure] = []
    extra: dict[str, object] = {}
    with console.status("Start-up..."):
        figures += startup.run(options.quick)
    with console.status("Harness cost and memory scaling (builds the stores once)..."):
        found, extra["breakdown"] = steps.run(options.quick)
        figures += found
    with console.status("Prompt tokens and model calls..."):
        found_tokens, sizes = tokens.run(options.quick)
        figures += found_tokens
        extra["prompt_sizes"] = sizes["sizes"]
    with console.status("Retrieval quality..."):
        figures += retrieval.run(options.quick)
    host["load_end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    seconds = time.perf_counter() - started
    report.print_table(console, figures)
    if not options.no_write:
        command = "python -m bench" + (" --quick" if options.quick else "")
        path = report.write_markdown(figures, host, extra, command, seconds)
        console.print(f"Wrote {path} in {seconds:.0f} s.")
    failed = [f for f in figures if f.ok is False]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
