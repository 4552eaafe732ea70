"""`imgnet votes serve`: a real server process on 127.0.0.1, real HTTP, and a real headless Chromium.

The browser is Debian's chromium (/usr/bin/chromium, installed by scripts/setup.sh) driven by
Playwright through ``executable_path``; Playwright's own browser download is never used.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Iterator

import pytest

from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.votes.table import read_votes
from tests.conftest import REPO
from tests.votes_data import VotesData, make_votes_data

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> VotesData:
    return make_votes_data(tmp_path_factory.mktemp("votes-serve"), per_class=12)


class Server:
    """``python -m imgnet_tools votes serve ...`` in a subprocess; ``url`` from its stderr line."""

    def __init__(self, data: VotesData, *extra: str) -> None:
        args = [sys.executable, "-m", "imgnet_tools", "votes", "serve", str(data.manifest), "--votes", str(data.votes),
                "--port", "0", *extra]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stderr or []], daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=120)
            except queue.Empty:
                self.proc.kill()
                raise AssertionError("the server printed no address within 120 s") from None
            if "labeling page:" in line:
                self.url = line.split("labeling page:")[1].split()[0]
                break
        parts = urllib.parse.urlsplit(self.url)
        self.host, self.port = parts.hostname or "", parts.port or 0

    def request(self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None,
                raw: bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=data, headers={**hdrs, **(headers or {})})
        resp = conn.getresponse()
        out = resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
        conn.close()
        return out

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


@pytest.fixture
def votes_copy(data: VotesData, tmp_path: Path) -> VotesData:
    """The shared dataset with its own empty votes table (each test starts from no votes)."""
    return VotesData(data.root, data.manifest, data.synsets, tmp_path / "votes.parquet")


@pytest.fixture
def server(votes_copy: VotesData) -> Iterator[Server]:
    s = Server(votes_copy)
    yield s
    if s.proc.poll() is None:
        s.stop()


def _keys(data: VotesData, wnid: str) -> list[str]:
    t = read_table(data.manifest, "manifest", columns=["key", "wnid", "path"]).to_pylist()
    return sorted(r["key"] for r in t if r["wnid"] == wnid)


def test_images_only_by_manifest_key_and_answers_only_as_json(server: Server, votes_copy: VotesData) -> None:
    key = _keys(votes_copy, "n01440764")[0]
    path = next(r["path"] for r in read_table(votes_copy.manifest, "manifest", columns=["key", "path"]).to_pylist() if r["key"] == key)
    status, body, headers = server.request("GET", f"/image/{key}")
    assert status == 200 and body == Path(path).read_bytes() and headers["content-type"] == "image/jpeg"
    for probe in ("/image/no-such-key", "/image/..%2F..%2F..%2Fetc%2Fpasswd", f"/image/{urllib.parse.quote(path, safe='')}",
                  "/static/../votes/server.py", "/static/page.py"):
        assert server.request("GET", probe)[0] == 404, probe
    answer = {"key": key, "wnid": "n01440764", "worker": "alice", "answer": "yes"}
    assert server.request("POST", "/api/answer", raw=b"key=x&answer=yes",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    assert server.request("POST", "/api/answer", {**answer, "answer": "perhaps"})[0] == 400
    assert server.request("POST", "/api/answer", {**answer, "worker": ""})[0] == 400
    assert server.request("POST", "/api/answer", {**answer, "wnid": "n01443537"})[0] == 404  # not a question here
    assert server.request("GET", "/api/synsets", headers={"Host": "evil.example:80"})[0] == 400  # DNS rebinding
    status, body, _ = server.request("POST", "/api/answer", answer)
    assert status == 200 and json.loads(body)["progress"]["answered_by_you"] == 1
    status, body, headers = server.request("GET", "/")
    assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
    assert server.stop() == 0
    assert [(r["key"], r["worker"], r["answer"], r["source"]) for r in read_votes(votes_copy.votes).to_pylist()] == [
        (key, "alice", "yes", "page")]


def test_a_token_guards_every_request(votes_copy: VotesData) -> None:
    s = Server(votes_copy, "--token", TOKEN)
    try:
        assert "?token=" in s.url
        assert s.request("GET", "/api/synsets")[0] == 403
        assert s.request("GET", "/")[0] == 403
        assert s.request("GET", "/?token=wrong-token-value")[0] == 403
        assert s.request("GET", "/api/synsets", headers={"X-Imgnet-Token": TOKEN})[0] == 200
        status, _, headers = s.request("GET", f"/?token={TOKEN}&worker=bo")
        assert status == 303 and headers["location"] == "/?worker=bo"
        assert "httponly" in headers["set-cookie"].lower() and "samesite=strict" in headers["set-cookie"].lower()
        cookie = headers["set-cookie"].split(";")[0]
        assert s.request("GET", "/api/synsets", headers={"Cookie": cookie})[0] == 200
    finally:
        s.stop()


def test_other_addresses_need_a_token(invoke, votes_copy: VotesData) -> None:
    result = invoke("votes", "serve", votes_copy.manifest, "--votes", votes_copy.votes, "--host", "0.0.0.0")
    assert result.exit_code == 2 and "--token" in result.output
    result = invoke("votes", "serve", votes_copy.manifest, "--votes", votes_copy.votes, "--token", "short")
    assert result.exit_code == 2 and "at least 8" in result.output


def test_a_crash_loses_no_saved_answer(votes_copy: VotesData) -> None:
    keys = _keys(votes_copy, "n01443537")
    s = Server(votes_copy)
    for k in keys[:3]:
        assert s.request("POST", "/api/answer", {"key": k, "wnid": "n01443537", "worker": "carl", "answer": "no"})[0] == 200
    s.stop(signal.SIGKILL)  # no shutdown, perhaps before the journal was folded into the table
    journal = votes_copy.votes.with_name("answers.jsonl")
    with open(journal, "ab") as fh:
        fh.write(b'{"format_version":1,"key":"torn')  # and a write cut short
    s = Server(votes_copy)
    try:
        got = {r["key"] for r in read_votes(votes_copy.votes).to_pylist()}
        assert got == set(keys[:3])  # folded at start, before the address was printed
        assert s.request("POST", "/api/answer", {"key": keys[3], "wnid": "n01443537", "worker": "carl", "answer": "yes"})[0] == 200
        assert json.loads(s.request("GET", "/api/status")[1])["skipped"] == {"malformed_row": 1}
    finally:
        assert s.stop() == 0
    rows = {r["key"]: r["answer"] for r in read_votes(votes_copy.votes).to_pylist()}
    assert rows == {**{k: "no" for k in keys[:3]}, keys[3]: "yes"}


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium (scripts/setup.sh installs it)")
def test_ten_answers_by_keyboard_in_a_real_browser(server: Server, votes_copy: VotesData, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    keys = _keys(votes_copy, "n01440764")
    presses = ["y", "n", "ArrowRight", "y", "m", "1", "2", "3", "y", "n", "y"]
    expected = dict(zip([k for i, k in enumerate(keys[:11]) if i != 2],
                        ["yes", "no", "yes", "maybe", "yes", "no", "maybe", "yes", "no", "yes"]))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(server.url + "?worker=alice")
            page.wait_for_selector("body[data-ready='1']")
            assert page.inner_text("#words") == "tench, Tinca tinca"
            assert "fish" in page.inner_text("#gloss")
            assert page.locator(".cell img").count() == 12
            page.wait_for_selector("#grid[data-loaded='12']")  # every image decoded (the page counts them)
            for key in presses:
                page.keyboard.press(key)
            page.wait_for_selector("#status[data-saved='10']")
            assert page.get_attribute("#status", "data-failed") == "0"
            assert "10 of 12 answered by you" in page.inner_text("#progress")
            assert page.locator(".cell[data-answer]").count() == 10
            shot = tmp_path / "votes-serve.png"
            page.screenshot(path=str(shot), full_page=True)
            docs = os.environ.get("IMGNET_DOCS_SCREENSHOTS")
            if docs:  # how docs/votes-serve.png is made
                shutil.copy(shot, Path(docs) / "votes-serve.png")
        finally:
            browser.close()
    assert server.stop() == 0
    rows = [r for r in read_votes(votes_copy.votes).to_pylist() if r["worker"] == "alice"]
    assert {r["key"]: r["answer"] for r in rows} == expected and len(rows) == 10
    assert {r["wnid"] for r in rows} == {"n01440764"} and {r["source"] for r in rows} == {"page"}
