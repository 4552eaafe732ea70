"""imgnet collect against a real HTTP server on 127.0.0.1: every fault endpoint, storage, safety, the CLI."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from imgnet_tools.collect.run import CollectParams, collect
from imgnet_tools.manifest.parquet import read_table
from tests.collect_server import ServerThread
from tests.imagegen import jpeg_bytes

IMAGES = {f"img{i}": jpeg_bytes(100 + i, (96, 64)) for i in range(6)}

# path on the server -> the reason collect must give (None: fetched)
EXPECTED = {
    "/img/img0": None, "/img/img1": None, "/404": "http_404", "/gone": "http_404", "/forbidden": "http_4xx",
    "/flaky/img2": None, "/limited/img3": None, "/limited-long/img3": "http_429", "/chain/3/img4": None,
    "/chain/9/img4": "too_many_redirects", "/loop/a": "redirect_loop", "/no-location": "bad_redirect",
    "/slow": "timeout", "/stall": "timeout", "/truncated/img1": "truncated", "/huge": "too_large",
    "/huge-stream": "too_large", "/gzip-bomb": "too_large", "/wrong-type/img5": None, "/html": "not_an_image",
    "/empty": "empty", "/bomb": "bomb", "/optout/img0": "opted_out", "/optout-imgnet/img0": "opted_out",
    "/optout-other/img1": None, "/img/no-such-image": "http_404",
}


@pytest.fixture(scope="module")
def server():
    with ServerThread(IMAGES) as srv:
        yield srv


def _params(tmp_path: Path, urls: list[str], **kw: Any) -> CollectParams:
    tmp_path.mkdir(parents=True, exist_ok=True)
    listing = tmp_path / "urls.csv"
    listing.write_text("url,wnid\n" + "".join(f"{u},n01440764\n" for u in urls))
    base: dict[str, Any] = dict(urls=(str(listing),), out=str(tmp_path / "out"), chunk_rows=7, timeout=2.0,
                                retries=2, max_retry_wait=5.0, max_redirects=5, max_bytes=1 << 20, workers=2)
    base.update(kw)
    return CollectParams(**base)


def _rows(out: Path) -> list[dict[str, Any]]:
    return read_table(out / "manifest.parquet", "manifest").to_pylist()


@pytest.fixture(scope="module")
def fault_run(server, tmp_path_factory):
    """One run over every fault endpoint (plus the list's own bad rows), shared by the tests below."""
    tmp = tmp_path_factory.mktemp("faults")
    urls = [server.url(p) for p in EXPECTED] + ["ftp://example.com/x.jpg", "", "not a url"]
    params = _params(tmp, urls, allow_host=(f"127.0.0.1:{server.port}",))
    result = collect(params)
    return params, result, _rows(tmp / "out")


def test_every_fault_endpoint_gets_its_reason(server, fault_run) -> None:
    _, result, rows = fault_run
    by_path = {r["url"].removeprefix(server.url("")): r for r in rows if r["url"] and r["url"].startswith("http")}
    got = {p: by_path[p]["reason"] for p in EXPECTED}
    assert got == EXPECTED
    for row in rows:
        assert (row["status"] == "pending") == (row["reason"] is None)
    assert [r["reason"] for r in rows[-3:]] == ["bad_url"] * 3
    assert result.rows == len(EXPECTED) + 3 and result.chunks == 5
    assert result.status == {"pending": sum(v is None for v in EXPECTED.values()),
                             "rejected": sum(v is not None for v in EXPECTED.values()) + 3}
    assert sum(result.reasons.values()) == result.status["rejected"]


def test_stored_files_are_the_servers_bytes_named_by_content(server, fault_run) -> None:
    params, _, rows = fault_run
    out = Path(params.out)
    fetched = [r for r in rows if r["status"] == "pending"]
    for row in fetched:
        name = row["url"].rsplit("/", 1)[1]
        data = Path(row["path"]).read_bytes()
        assert data == IMAGES[name]
        digest = hashlib.sha256(data).hexdigest()
        assert row["path"] == str(out / digest[:2] / digest[2:4] / f"{digest}.jpg") == row["source_path"]
        assert (row["sha256"], row["bytes"], row["http_status"]) == (digest, len(data), 200)
        assert row["fetched_at"] is not None and row["fetch_error"] is None
    stored = sorted(p for p in out.glob("??/??/*") if p.is_file())
    assert len(stored) == len({r["sha256"] for r in fetched}) < len(fetched)  # img0, img1 ... came twice
    assert not list((out / "_state" / "tmp").glob("*")), "no half-received body is left"


def test_rejected_rows_say_what_went_wrong(server, fault_run) -> None:
    _, _, rows = fault_run
    by_path = {r["url"].removeprefix(server.url("")): r for r in rows if r["url"] and r["url"].startswith("http")}
    assert by_path["/404"]["http_status"] == 404 and by_path["/404"]["fetch_error"] == "HTTP 404 Not Found"
    assert by_path["/chain/3/img4"]["final_url"] == server.url("/chain/0/img4")
    assert by_path["/wrong-type/img5"]["content_type"] == "text/html"
    assert "X-Robots-Tag: noai" in by_path["/optout/img0"]["fetch_error"]
    assert "Retry-After" in by_path["/limited-long/img3"]["fetch_error"] or "wait" in by_path["/limited-long/img3"]["fetch_error"]
    for row in rows:
        if row["status"] == "rejected":
            assert row["fetch_error"] and row["bytes"] is None and not Path(row["path"]).exists()


def test_retries_ask_again_and_the_user_agent_names_imgnet(server, fault_run) -> None:
    assert server.handlers.hits["/flaky/img2"] == 2  # 500, then the image
    assert server.handlers.hits["/limited/img3"] == 2  # 429 with Retry-After: 1, then the image
    assert server.handlers.hits["/limited-long/img3"] == 1  # Retry-After: 3600 is above --max-retry-wait
    assert server.handlers.hits["/404"] == 1  # a 404 is not retried
    assert any(agent.startswith("imgnet/") for agent in server.handlers.agents)


def test_the_run_record_holds_the_opt_out_policy(fault_run) -> None:
    params, result, _ = fault_run
    record = json.loads((Path(params.out) / "_state" / "run.json").read_text())
    assert record["complete"] and record["params"]["honour_opt_out"] is True
    assert result.params["ignore_opt_out"] is False


def test_ignore_opt_out_fetches_and_is_recorded(server, tmp_path: Path) -> None:
    params = _params(tmp_path, [server.url("/optout/img0"), server.url("/optout-imgnet/img1")],
                     allow_private_hosts=True, ignore_opt_out=True)
    result = collect(params)
    assert result.status == {"pending": 2} and result.params["honour_opt_out"] is False
    record = json.loads((tmp_path / "out" / "_state" / "run.json").read_text())
    assert record["params"]["ignore_opt_out"] is True


def test_private_hosts_are_refused_without_a_flag_and_never_contacted(server, tmp_path: Path) -> None:
    before = server.handlers.hits["/img/img3"]
    urls = [server.url("/img/img3"), f"http://localhost:{server.port}/img/img3", f"http://[::1]:{server.port}/img/img3"]
    result = collect(_params(tmp_path, urls))
    assert result.reasons == {"private_host": 3}
    assert server.handlers.hits["/img/img3"] == before


def test_a_redirect_to_another_loopback_port_is_refused_unless_private_hosts_are_allowed(server, tmp_path: Path) -> None:
    with ServerThread(IMAGES) as other:
        hop = server.url("/redirect?to=" + other.url("/img/img4"))
        refused = collect(_params(tmp_path / "a", [hop], allow_host=(f"127.0.0.1:{server.port}",)))
        assert refused.reasons == {"private_host": 1}
        assert other.handlers.hits["/img/img4"] == 0
        allowed = collect(_params(tmp_path / "b", [hop], allow_private_hosts=True))
        assert allowed.status == {"pending": 1} and other.handlers.hits["/img/img4"] == 1
        row = _rows(tmp_path / "b" / "out")[0]
        assert row["final_url"] == other.url("/img/img4") and Path(row["path"]).read_bytes() == IMAGES["img4"]


def test_redirects_to_other_schemes_are_refused(server, tmp_path: Path) -> None:
    urls = [server.url("/redirect?to=file:///etc/passwd"), server.url("/redirect?to=ftp://example.com/x")]
    result = collect(_params(tmp_path, urls, allow_private_hosts=True))
    assert result.reasons == {"bad_url": 2}


def test_a_closed_port_is_a_connection_failure(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = collect(_params(tmp_path, [f"http://127.0.0.1:{port}/x.jpg"], allow_private_hosts=True, retries=1))
    assert result.reasons == {"connection": 1}


def test_labels_splits_and_captions_reach_the_manifest(server, tmp_path: Path) -> None:
    listing = tmp_path / "urls.jsonl"
    docs = [{"url": server.url("/img/img0"), "wnid": "n01443537", "split": "val", "caption": "a tench"},
            {"url": server.url("/img/img1"), "wnid": "n01440764"},
            {"url": server.url("/img/img2"), "wnid": "n09999999"}]
    listing.write_text("".join(json.dumps(d) + "\n" for d in docs))
    classes = tmp_path / "wnids.txt"
    classes.write_text("n01440764\nn01443537\n")
    collect(CollectParams(urls=(str(listing),), out=str(tmp_path / "out"), classes=str(classes),
                          allow_private_hosts=True, workers=1))
    rows = _rows(tmp_path / "out")
    assert [(r["split"], r["label"], r["wnid"], r["caption"], r["status"]) for r in rows] == [
        ("val", 1, "n01443537", "a tench", "pending"), ("train", 0, "n01440764", None, "pending"),
        ("train", None, "n09999999", None, "rejected")]
    assert rows[2]["reason"] == "unknown_class" and server.handlers.hits["/img/img2"] == 0
    assert [r["key"] for r in rows] == ["val-n01443537-000000000", "train-n01440764-000000001",
                                        "train-n09999999-000000002"]


def test_cli_prints_a_summary_and_json(server, tmp_path: Path, invoke) -> None:
    listing = tmp_path / "fall11_urls.txt"
    listing.write_text(f"n01440764_1\t{server.url('/img/img0')}\nn01440764_2\t{server.url('/404')}\n")
    out = tmp_path / "out"
    result = invoke("collect", listing, "--out", out, "--allow-private-hosts", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "2 rows in 1 chunks" in result.output and "reasons: http_404 1" in result.output
    again = invoke("collect", listing, "--out", out, "--allow-private-hosts", "--json")
    doc = json.loads(again.output)
    assert doc["chunks_run"] == 0 and doc["tried"] == 0 and doc["status"] == {"pending": 1, "rejected": 1}


def test_the_progress_line_on_a_terminal_shows_share_successes_failures_and_rate(server, tmp_path: Path) -> None:
    """A real ``imgnet collect`` with stderr on a pseudo-terminal (the bar shows only on a terminal)."""
    import os
    import pty
    import re
    import subprocess
    import sys

    listing = tmp_path / "urls.csv"
    listing.write_text(f"url,wnid\n{server.url('/img/img0')},n01440764\n{server.url('/404')},n01440764\n"
                       f"{server.url('/img/img1')},n01440764\n")
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    master, slave = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "imgnet_tools", "collect", str(listing), "--out",
                               str(tmp_path / "out"), "--allow-private-hosts", "--workers", "1"],
                              env=env, stdout=subprocess.PIPE, stderr=slave, text=True, timeout=120)
    finally:
        os.close(slave)
    shown = b""
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: every writer of the terminal is gone and its output read
            break
        if not data:
            break
        shown += data
    os.close(master)
    assert done.returncode == 0, done.stdout
    # the terminal turns the final newline into CR LF: the line shown last is the last non-blank one
    last = [seg for seg in shown.decode().replace("\r\n", "\n").split("\r") if seg.strip()][-1]
    assert re.search(r"collect: 100% 3/3 \| ok 2 \| failed 1 \(http_404 1\) \| \d+/s", last), shown
    assert "3 rows in 1 chunks" in done.stdout  # the summary goes to stdout, the bar to the terminal only


def test_cli_errors_are_one_line(tmp_path: Path, invoke) -> None:
    listing = tmp_path / "no_url_column.csv"
    listing.write_text("path,wnid\na.jpg,n01440764\n")
    result = invoke("collect", listing, "--out", tmp_path / "out")
    assert result.exit_code == 2 and result.output.startswith("Error: ") and "url" in result.output
    usage = invoke("collect", listing, "--out", tmp_path / "out", "--address", "auto")
    assert usage.exit_code == 2


def test_a_worker_keeps_its_session_and_connections_from_chunk_to_chunk(server, tmp_path) -> None:
    """``fetch_chunk(keep=True)``, as a pool worker calls it for each chunk: the next chunk reuses
    the event loop, the session and its keep-alive connections instead of opening new ones."""
    from imgnet_tools.collect import fetch
    from imgnet_tools.collect.store import ObjectStore
    from imgnet_tools.collect.urls import AddressPolicy

    config = fetch.FetchConfig(concurrency=2, per_host=2, policy=AddressPolicy(allow_private=True))
    urls = [server.url(f"/img/img{i}") for i in range(6)]
    try:
        server.handlers.peers.clear()
        first = fetch.fetch_chunk(urls[:3], config, ObjectStore(str(tmp_path), 10**8), keep=True)
        kept, connections = fetch._Kept.fetcher, set(server.handlers.peers)
        second = fetch.fetch_chunk(urls[3:], config, ObjectStore(str(tmp_path), 10**8), keep=True)
        assert fetch._Kept.fetcher is kept and kept is not None
        assert 1 <= len(connections) <= 2 and server.handlers.peers == connections  # no new connection
        assert [o.stored.sha256 for o in first + second if o.stored] == [
            hashlib.sha256(IMAGES[f"img{i}"]).hexdigest() for i in range(6)]
    finally:
        fetch.close_kept()
    assert fetch._Kept.loop is None
    alone = fetch.fetch_chunk(urls[:1], config, ObjectStore(str(tmp_path), 10**8))  # keep=False: nothing kept
    assert alone[0].stored is not None and fetch._Kept.fetcher is None


def test_results_are_committed_in_the_background_and_a_failure_reaches_the_driver(tmp_path) -> None:
    """The local pool's commits: a thread syncs the file system, commits each result, then drops
    its journal; a commit that fails (here: the work folder is a file) is raised by close()."""
    import pyarrow as pa

    from imgnet_tools.collect.run import _Committer
    from imgnet_tools.errors import DiskError
    from imgnet_tools.execute.chunked import Chunk
    from imgnet_tools.manifest.parts import PartStore

    (tmp_path / "parts").mkdir()
    store = PartStore(tmp_path / "parts")
    journals = [tmp_path / f"journal-{i}" for i in range(3)]
    for journal in journals:
        journal.write_text("{}\n")
    committer = _Committer(store, str(tmp_path), lambda i: str(journals[i]), background=True)
    chunks = [Chunk(i, [(i, 0, f"http://example.com/{i}")], f"key{i}") for i in range(3)]
    for chunk in chunks:
        committer.commit(chunk, pa.table({"offset": pa.array([chunk.index], pa.int32())}))
    committer.close()
    assert [store.load(c).column("offset").to_pylist() for c in chunks] == [[0], [1], [2]]
    assert not any(j.exists() for j in journals)

    (tmp_path / "not-a-folder").write_text("")
    failing = _Committer(PartStore(tmp_path / "not-a-folder"), str(tmp_path), lambda i: str(journals[i]),
                         background=True)
    failing.commit(chunks[0], pa.table({"offset": pa.array([0], pa.int32())}))
    with pytest.raises(DiskError, match="committing chunk 0"):
        failing.close()


@pytest.mark.parametrize(("workers", "concurrency", "per_host", "most"), [
    (1, 8, 2, 2),  # the per-host limit binds (one host)
    (1, 3, 0, 3),  # no per-host limit: the concurrency binds
    (2, 8, 2, 2),  # run totals, divided among the workers (1 per host each; two chunks of 8 at once)
])
def test_concurrency_and_per_host_bound_the_requests_in_flight(tmp_path, workers, concurrency, per_host, most) -> None:
    """With every response delayed, the server sees exactly as many requests at once as the
    limits allow: ``--per-host`` for one host, else ``--concurrency`` (both totals of the run)."""
    with ServerThread(IMAGES, latency=0.2) as slow:
        urls = [slow.url(f"/img/img{i % 6}") for i in range(16)]
        result = collect(_params(tmp_path, urls, chunk_rows=8, workers=workers, concurrency=concurrency,
                                 per_host=per_host, allow_private_hosts=True))
        assert result.status == {"pending": 16}
        assert slow.handlers.most_in_flight == most
