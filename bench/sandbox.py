"""The cost of the sandbox: starting a confined program against an unconfined one.

`python -m bench.sandbox` starts `/bin/true` and `python -c pass` with no sandbox, then under
each mechanism that works here, and prints the median wall time from start to exit and the cost
the sandbox adds (target: < 50 ms on the 2-core machine). Programs are started with
start_process() and waited for directly: run_process() checks for the end every 50 ms, which
would hide the difference.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from autoagent.tools.process import start_process
from autoagent.tools.sandbox import Mechanism, Sandbox, probe

TARGET_MS = 50.0
RUNS = 30


def _median_ms(argv: list[str], sandbox: Sandbox | None, workspace: Path, runs: int) -> float:
    times = []
    for _ in range(runs + 2):
        started = time.perf_counter()
        tool = start_process(argv, cwd=workspace, sandbox=sandbox)
        exit_code = tool.proc.wait()
        times.append((time.perf_counter() - started) * 1000)
        tool.stop()
        if exit_code != 0:
            raise SystemExit(f"{argv} failed under {sandbox}: exit code {exit_code}")
    return statistics.median(times[2:])  # the first two warm the caches


def main(runs: int = RUNS) -> None:
    programs = {"/bin/true": ["/bin/true"], "python -c pass": [sys.executable, "-c", "pass"]}
    with tempfile.TemporaryDirectory(prefix="autoagent-bench-") as folder:
        workspace = Path(folder).resolve()
        print(f"median of {runs} runs, ms | unconfined | confined | added | target < {TARGET_MS:g}")
        for mechanism in (Mechanism.BWRAP, Mechanism.LANDLOCK):
            problem = probe(mechanism)
            if problem is not None:
                print(f"{mechanism.value}: not available ({problem})")
                continue
            sandbox = Sandbox(mechanism=mechanism, workspace=workspace)
            for name, argv in programs.items():
                bare = _median_ms(argv, None, workspace, runs)
                confined = _median_ms(argv, sandbox, workspace, runs)
                added = confined - bare
                verdict = "pass" if added < TARGET_MS else "FAIL"
                print(
                    f"{mechanism.value}: {name} | {bare:.1f} | {confined:.1f} | {added:.1f} | "
                    f"{verdict}"
                )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else RUNS)
