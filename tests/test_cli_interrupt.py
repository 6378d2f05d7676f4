"""The first Ctrl-C stops the run, wherever it lands: here, while sandboxed programs start."""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply
from autoagent.tools.sandbox import Mechanism, probe

from .cli_helpers import PROFILE, finish, spawn
from .test_cli_durable import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


@pytest.fixture(params=[Mechanism.BWRAP, Mechanism.LANDLOCK], ids=["bwrap", "landlock"])
def mechanism(request: pytest.FixtureRequest) -> str:
    problem = probe(request.param)
    if problem is not None:
        pytest.skip(f"{request.param.value} does not work here: {problem}")
    return str(request.param.value)


def test_the_first_ctrl_c_while_programs_start_stops_the_run(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    count = itertools.count()

    def one_program_after_another(request: dict[str, Any]) -> str:
        return execution_reply("execute_python_code", code=f"print({next(count)})")

    server.respond("execution", one_program_after_another)
    rng = random.Random(8)
    for attempt in range(10):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        asked = len(server.requests_for("execution"))
        child = spawn(
            folder,
            server,
            "run",
            *PROFILE,
            "-c",
            "--allow-high-risk",
            AUTOAGENT_SANDBOX=mechanism,
            AUTOAGENT_STALL_STEPS="1000",
        )
        # A few programs in: most of the run's time is now spent starting the next one.
        wait_for(lambda: len(server.requests_for("execution")) >= asked + 3)  # noqa: B023
        time.sleep(rng.uniform(0, 0.3))
        child.sendintr()
        child.expect(["Run interrupted:", pexpect.EOF, pexpect.TIMEOUT], timeout=15)
        assert child.after == "Run interrupted:", f"attempt {attempt}: {child.before[-2000:]}"
        assert "Exception ignored" not in child.before
        assert finish(child) == 130, f"attempt {attempt}"
