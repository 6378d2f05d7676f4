"""The web console in a real browser (Debian's Chromium, headless), end to end: a continuous run
with --wait-for-approval in a pseudo-terminal, `autoagent serve` beside it, and a human who
watches the timeline live, approves one command, denies another with feedback, and is not
fooled by a page of another origin or by markup in the model's thoughts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from autoagent.cli.inbox import pending
from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, cli_env, finish, spawn

T = TypeVar("T")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
EVIL = '<script>alert("xss")</script><img src=x onerror="window.__xss=2">'
FEEDBACK = "Keep b.txt; write c.txt instead"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver), which .ci/run installs",
    ),
]


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium must never download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[str]:
    """`autoagent serve --port 0` on the tests' AUTOAGENT_HOME; its URL with the token."""
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "autoagent", "serve", "--port", "0"],
            cwd=tmp_path,
            env=cli_env(tmp_path, None),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line)
            assert match, line + (tmp_path / "serve.log").read_text()
            yield match.group(0)
        finally:
            process.terminate()
            process.wait(10)


class Gate:
    """Holds the model's next execution reply until the test lets it go."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = deque(replies)
        self.open = threading.Event()

    def __call__(self, request: dict[str, Any]) -> str:
        assert self.open.wait(120), "the test never let the reply go"
        return self.replies.popleft() if self.replies else execution_reply("finish", reason="ok")


class CrossSitePage:
    """A page of another origin (another port) that posts an approval to the console."""

    def __init__(self, action: str, fields: dict[str, str]) -> None:
        inputs = "".join(f'<input name="{k}" value="{v}">' for k, v in fields.items())
        page = (
            f'<form id="f" method="post" action="{action}">{inputs}</form>'
            '<script>document.getElementById("f").submit()</script>'
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait(driver: WebDriver, condition: Any, timeout: float = 30) -> Any:
    return WebDriverWait(
        driver, timeout, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    ).until(condition)


def settled(read: Callable[[], T]) -> T:
    """`read()`, again if the page replaced what it read meanwhile (the live parts do)."""
    for _ in range(10):
        try:
            return read()
        except StaleElementReferenceException:
            continue
    return read()


def text_of(driver: WebDriver, selector: str) -> str:
    def read() -> str:
        found = driver.find_elements(By.CSS_SELECTOR, selector)
        return str(found[0].text) if found else ""

    return settled(read)


def request_ids(driver: WebDriver) -> list[str]:
    def read() -> list[str]:
        articles = driver.find_elements(By.CSS_SELECTOR, "#requests article.request")
        return [str(article.get_attribute("id")).removeprefix("request-") for article in articles]

    return settled(read)


def test_a_human_watches_approves_and_denies_from_the_browser(
    tmp_path: Path, server: FakeOpenAIServer, browser: WebDriver, console: str
) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "b.txt").write_text("keep me")
    server.script("execution", execution_reply("write_file", EVIL, path="a.txt", content="x"))
    gate = Gate(
        [
            execution_reply("delete_file", "Now a.txt can go.", path="a.txt"),
            execution_reply("delete_file", "And b.txt.", path="b.txt"),
            execution_reply("finish", "Done.", reason="All goals met."),
        ]
    )
    server.respond("execution", gate)
    run = spawn(tmp_path, server, "run", *PROFILE, "-c", "--wait-for-approval", timeout=90)
    run.expect_exact("RESULT (write_file)")
    home = tmp_path / "home"
    [run_id] = [p.name for p in (home / "runs").iterdir() if not p.name.startswith(".")]
    base = console.split("/?", 1)[0]

    # Without the token: refused.
    assert httpx.get(f"{base}/").status_code == 403
    assert httpx.get(f"{base}/runs/{run_id}").status_code == 403

    # With it: the runs, then the run's timeline; the thoughts' markup is text.
    browser.get(console)
    assert browser.current_url == f"{base}/"
    wait(browser, lambda d: run_id in text_of(d, "#runs"))
    browser.find_element(By.LINK_TEXT, run_id).click()
    wait(browser, lambda d: d.find_elements(By.ID, "step-1"))
    assert text_of(browser, "#step-1 .thoughts") == EVIL
    assert not settled(lambda: browser.find_elements(By.CSS_SELECTOR, "#step-1 .thoughts img"))
    assert browser.execute_script("return window.__xss") is None
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018
    assert not browser.find_elements(By.ID, "step-2")

    # The next step and its request appear without a reload.
    browser.execute_script("window.__samePage = 42")
    gate.open.set()
    run.expect_exact("Waiting for a human")
    wait(browser, lambda d: d.find_elements(By.ID, "step-2"))
    wait(browser, lambda d: request_ids(d))
    assert browser.execute_script("return window.__samePage") == 42
    assert "awaiting" in text_of(browser, "#step-2")
    [first] = request_ids(browser)
    assert "delete_file" in text_of(browser, f"#request-{first}")

    # A page of another origin that posts an approval is refused; nothing is recorded.
    [waiting] = pending(home)
    forged = CrossSitePage(
        f"{base}/requests/{first}",
        {"action": "approve", "digest": waiting.request.digest, "back": "/approvals"},
    )
    try:
        browser.get(forged.url)
        wait(browser, lambda d: "Forbidden" in d.find_element(By.TAG_NAME, "body").text)
    finally:
        forged.close()
    assert waiting.store.answer_of(first) is None
    assert not (home / "audit.jsonl").exists()
    assert (tmp_path / "ws" / "a.txt").exists()

    # Approve: the run goes on and the command's result appears.
    browser.get(f"{base}/runs/{run_id}")
    wait(browser, lambda d: request_ids(d) == [first])
    browser.find_element(By.CSS_SELECTOR, f"#request-{first} form.approve button").click()
    wait(
        browser, lambda d: f"Request {first}: approve by 127.0.0.1 through the web" in d.page_source
    )
    run.expect_exact("Answered elsewhere")
    run.expect_exact("RESULT (delete_file)")
    wait(browser, lambda d: text_of(d, "#step-2 .result"))
    assert not (tmp_path / "ws" / "a.txt").exists()
    decision = text_of(browser, "#step-2 .decision")
    assert "approve by human (127.0.0.1) through the web" in decision
    assert f"request {first}" in decision

    # Deny the next one with feedback: the command does not run, the model reads why.
    run.expect_exact("Waiting for a human")
    wait(browser, lambda d: request_ids(d) and request_ids(d) != [first])
    [second] = request_ids(browser)
    browser.find_element(
        By.CSS_SELECTOR, f"#request-{second} form.deny input[name=text]"
    ).send_keys(FEEDBACK)
    browser.find_element(By.CSS_SELECTOR, f"#request-{second} form.deny button").click()
    run.expect_exact("Answered elsewhere")
    run.expect_exact("Run finished")
    assert finish(run) == 0
    assert (tmp_path / "ws" / "b.txt").read_text() == "keep me"
    last_prompt = json.dumps(server.requests_for("execution")[-1]["messages"])
    assert FEEDBACK in last_prompt

    # The run ended: the page shows it without a reload, with the denial and its feedback.
    wait(browser, lambda d: "Run finished" in text_of(d, "#timeline"))
    assert "deny by human (127.0.0.1) through the web" in text_of(browser, "#step-3 .decision")
    assert FEEDBACK in text_of(browser, "#step-3 .decision")
    assert settled(lambda: browser.find_elements(By.CSS_SELECTOR, "#spend-chart polyline"))
    assert browser.execute_script("return window.__xss") is None
    shot = tmp_path / "timeline.png"
    assert browser.save_screenshot(str(shot))
    print(f"screenshot of the timeline: {shot}")

    # A browser without the cookie is refused.
    browser.delete_all_cookies()
    browser.get(f"{base}/runs/{run_id}")
    assert "Forbidden" in browser.find_element(By.TAG_NAME, "body").text
    assert run_id not in browser.find_element(By.TAG_NAME, "body").text
