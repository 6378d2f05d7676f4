"""What a chat call costs the client: autoagent's model client (the openai package) beside a bare
http.client, sending the same streamed request to the local test server over a kept-open
connection. A diagnostic for `bench.whole`'s overhead a step (two calls a step).

    PYTHONPATH=. python -m bench.client
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from autoagent.model.llm import OpenAIChatModel
from autoagent.model.testing import FakeOpenAIServer, execution_reply

CALLS = 200
MODEL = "gpt-4o-mini"
# About the size of an execution prompt in bench.whole (1,500-2,000 tokens).
MESSAGES = [
    {"role": "system", "content": "You are the execution agent of a careful assistant. " * 60},
    {"role": "user", "content": "Write the next note and check what it says. " * 100},
]


def timed(call: Callable[[], object]) -> tuple[float, float]:
    """Median wall time and CPU time of the calling thread (not the server's), in ms."""
    call()  # warm: imports, the connection
    walls, cpus = [], []
    for _ in range(CALLS):
        wall, cpu = time.perf_counter(), time.thread_time()
        call()
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def main() -> None:
    reply = execution_reply("write_file", path="notes/n1.md", content="x" * 800)
    with FakeOpenAIServer() as server:
        server.respond("execution", lambda request: reply)
        model = OpenAIChatModel(api_key="bench", base_url=server.base_url, max_retries=0)
        ours = timed(lambda: model.complete(MESSAGES, model=MODEL))
        url = urlsplit(server.base_url)
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)
        body = json.dumps(
            {
                "model": MODEL,
                "messages": MESSAGES,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()

        def bare() -> None:
            connection.request(
                "POST", f"{url.path}/chat/completions", body, {"Content-Type": "application/json"}
            )
            connection.getresponse().read()

        floor = timed(bare)
        served = [s - r for _, r, s in server.served]
    print("| client | wall a call | CPU a call (client thread) |")
    print("|---|---|---|")
    print(f"| autoagent's (openai {openai_version()}) | {ours[0]:.1f} ms | {ours[1]:.1f} ms |")
    print(f"| http.client | {floor[0]:.1f} ms | {floor[1]:.1f} ms |")
    print(f"\nThe server's own time a call: {statistics.median(served) * 1000:.1f} ms (median).")


def openai_version() -> str:
    import openai

    return openai.__version__


if __name__ == "__main__":
    main()
