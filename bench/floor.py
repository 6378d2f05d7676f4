"""The floor for bench.whole: the same model round trips and one fsync'd write per step, with
nothing else. Standard library only, so its start-up is the interpreter's.

    python bench/floor.py REQUESTS.json BASE_URL WORKDIR

REQUESTS.json holds the chat requests an autoagent run sent, in order; each is sent again (the
same bytes) and its reply read, and after each execution request a ~800-character note is
written and synced, as the scripted job does.
"""

import http.client
import json
import os
import sys
from urllib.parse import urlsplit


def reply_text(body: bytes, streamed: bool) -> str:
    """The reply's text, from one JSON body or from server-sent events."""
    if not streamed:
        return json.loads(body)["choices"][0]["message"]["content"]
    pieces = []
    for line in body.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:])["choices"]:
                pieces.append(choice["delta"].get("content") or "")
    return "".join(pieces)


def main() -> None:
    requests_file, base_url, workdir = sys.argv[1:4]
    with open(requests_file, encoding="utf-8") as file:
        requests = json.load(file)
    url = urlsplit(base_url)
    note = ("A note of about eight hundred characters, written and synced. " * 13)[:800]
    # One connection kept open, as any HTTP client library does.
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)
    for number, request in enumerate(requests):
        body = json.dumps(request).encode()
        connection.request(
            "POST", f"{url.path}/chat/completions", body, {"Content-Type": "application/json"}
        )
        json.loads(reply_text(connection.getresponse().read(), request.get("stream")))
        if "execution agent" in request["messages"][0]["content"]:
            path = os.path.join(workdir, f"note{number}.md")
            with open(path, "w", encoding="utf-8") as file:
                file.write(note)
                file.flush()
                os.fsync(file.fileno())


if __name__ == "__main__":
    main()
