"""A newcomer's first `./run.sh`: a fresh clone, nothing cached, to the first step on screen.

    python -m bench.first_run [--write]

Clones this repository's committed HEAD into a temporary folder, runs `./run.sh` there with
pip's cache off and an empty llama.cpp build cache (so everything is downloaded and compiled),
and times it to the first NEXT ACTION on screen; then a second start, set up. Wall time, the
CPU time of every process it started (user + sys), and the load average are reported: on 2
cores, another busy process makes the wall time longer, not the CPU time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from .sections import replace_section

REPO = Path(__file__).resolve().parent.parent
ARGS = [
    "--name",
    "Newcomer",
    "--role",
    "a first try",
    "--goal",
    "Write hello world to hello.txt",
    "-y",
    "--continuous",
    "--max-steps",
    "1",
]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def first_step(clone: Path, env: dict[str, str], work: Path) -> tuple[float, float, int]:
    """Seconds to the first step on screen, CPU seconds used, exit code."""
    cpu = children_cpu()
    started = time.monotonic()
    process = subprocess.Popen(
        [str(clone / "run.sh"), *ARGS, "--workspace", str(work / "ws")],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen: float | None = None
    for line in process.stdout:
        if seen is None and "NEXT ACTION" in line:
            seen = time.monotonic() - started
    code = process.wait()
    return (seen if seen is not None else float("nan")), children_cpu() - cpu, code


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.first_run", description=__doc__)
    parser.add_argument("--write", action="store_true", help="put the figures in RESULTS.md")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="first-run-"))
    clone = root / "autoagent"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AUTOAGENT_"))}
    env |= {
        "PIP_NO_CACHE_DIR": "1",
        "XDG_CACHE_HOME": str(root / "cache"),
        "AUTOAGENT_HOME": str(root / "home"),
        "NO_COLOR": "1",
    }
    load = os.getloadavg()
    first = first_step(clone, env, root)
    second = first_step(clone, env, root)
    text = "\n".join(
        [
            "## A newcomer's first run",
            "",
            "Made by `python -m bench.first_run`: a fresh clone, pip's cache off and an empty "
            "llama.cpp build cache, `./run.sh` to the first step on screen (then a second start). "
            f"Load average at the start: {', '.join(f'{x:.2f}' for x in load)}; at the end: "
            f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
            "",
            "| start | to the first step | CPU (all processes) | exit | target |",
            "|---|---|---|---|---|",
            f"| first (downloads, compiles llama.cpp) | {first[0]:.0f} s | {first[1]:.0f} s "
            f"| {first[2]} | < 300 s |",
            f"| second (set up) | {second[0]:.1f} s | {second[1]:.1f} s | {second[2]} | < 20 s |",
            "",
            "Exit 3 is the stop `--max-steps 1` asks for (README: Exit codes), 0 a run the model "
            "finished in that step.",
        ]
    )
    print(text)
    if options.write:
        replace_section("first-run", text)


if __name__ == "__main__":
    main()
