"""collect resumes: a re-run does nothing, kill -9 mid-run then resume gives the uninterrupted result,
--retry fetches only what failed, a changed input needs --overwrite, Ray gives the local manifest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from imgnet_tools.collect.run import CollectParams, collect, outputs_complete
from imgnet_tools.errors import LockedError, OutputExistsError
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.manifest.parts import work_path
from tests.collect_server import ServerThread
from tests.conftest import REPO
from tests.imagegen import jpeg_bytes

IMAGES = {f"p{i:03d}": jpeg_bytes(300 + i, (80, 60)) for i in range(120)}
# Columns that differ between two runs of the same input by nature (when, and where on disk).
VOLATILE = ("fetched_at", "mtime_ns", "source_mtime_ns", "path", "source_path")


@pytest.fixture(scope="module")
def server():
    with ServerThread(IMAGES, latency=0.02) as srv:
        yield srv


def _listing(folder: Path, server: ServerThread, extra: list[str] = ()) -> Path:  # type: ignore[assignment]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fall11_urls.txt"
    urls = [server.url(f"/img/{name}") for name in IMAGES] + [server.url("/404")] + list(extra)
    path.write_text("".join(f"n01440764_{i}\t{u}\n" for i, u in enumerate(urls)))
    return path


def _params(listing: Path, out: Path, **kw: Any) -> CollectParams:
    base: dict[str, Any] = dict(urls=(str(listing),), out=str(out), chunk_rows=10, concurrency=4, workers=2,
                                allow_private_hosts=True, timeout=5.0)
    base.update(kw)
    return CollectParams(**base)


def _comparable(out: Path) -> list[dict[str, Any]]:
    rows = read_table(out / "manifest.parquet", "manifest").to_pylist()
    for row in rows:
        for column in VOLATILE:
            value = row.pop(column)
            if column == "path" and value is not None:
                row["relpath"] = os.path.relpath(value, out)
    return rows


def _work(out: Path) -> Path:
    """The skeleton's work folder of a collect run into ``out`` (parts and journals)."""
    return work_path(out / "manifest.parquet", "collect")


def _whole(line: str) -> bool:
    """A journal line that was written completely (the kill may tear the last one)."""
    import json

    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("??/??/*"))}


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory):
    """An uninterrupted run: what every resumed run must end with."""
    tmp = tmp_path_factory.mktemp("reference")
    listing = _listing(tmp, server)
    out = tmp / "out"
    result = collect(_params(listing, out))
    return listing, out, result


def test_a_rerun_with_the_same_input_does_nothing(server, reference) -> None:
    listing, out, first = reference
    assert first.status == {"pending": 120, "rejected": 1} and first.chunks == 13
    manifest = out / "manifest.parquet"
    stamp = manifest.stat().st_mtime_ns
    hits = sum(server.handlers.hits.values())
    assert outputs_complete(_params(listing, out))
    again = collect(_params(listing, out))
    assert (again.chunks_run, again.tried) == (0, 0)
    assert again.status == first.status and manifest.stat().st_mtime_ns == stamp
    assert sum(server.handlers.hits.values()) == hits
    assert not _work(out).exists(), "the work folder goes once the manifest is written"


def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_result(server, reference, tmp_path: Path) -> None:
    listing, ref_out, _ = reference
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "imgnet_tools", "collect", str(listing), "--out", str(out), "--chunk-rows", "10",
           "--concurrency", "4", "--workers", "2", "--allow-private-hosts", "--timeout", "5", "-q"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    work = _work(out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(work.glob("part-*.arrow"))) < 3 and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read() if proc.stderr else ''}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    finished = {int(p.stem.split("-")[1]) for p in work.glob("part-*.arrow")}
    assert 3 <= len(finished) < 13 and not (out / "manifest.parquet").exists()
    missing_rows = sum(10 if i < 12 else 1 for i in range(13) if i not in finished)
    journalled = sum(1 for j in work.glob("journal-*.jsonl") if int(j.stem.split("-")[1]) not in finished
                     for line in j.read_text().splitlines() if _whole(line))
    resumed = collect(_params(listing, out))
    assert (resumed.chunks_run, resumed.resumed_chunks) == (13 - len(finished), len(finished))
    assert resumed.tried == missing_rows - journalled  # what the killed run finished is not fetched again
    assert _files(out) == _files(ref_out)
    assert _comparable(out) == _comparable(ref_out)
    assert not list((out / "_state" / "tmp").glob("*")) and not work.exists()


def test_retry_fetches_only_the_rows_rejected_for_those_reasons(server, tmp_path: Path) -> None:
    listing = _listing(tmp_path, server, extra=[server.url("/toggle/p000"), server.url("/toggle/p001")])
    out = tmp_path / "out"
    server.handlers.toggle_ok = False
    first = collect(_params(listing, out, retries=0))
    assert first.reasons == {"http_404": 1, "http_5xx": 2}
    server.handlers.toggle_ok = True
    assert collect(_params(listing, out)).tried == 0  # without --retry a finished run is left alone
    assert not outputs_complete(_params(listing, out, retry=("http_5xx",)))
    hits = server.handlers.hits["/img/p005"]
    retried = collect(_params(listing, out, retry=("http_5xx",)))
    assert (retried.chunks_run, retried.tried) == (1, 2)
    assert retried.reasons == {"http_404": 1} and retried.status == {"pending": 122, "rejected": 1}
    assert server.handlers.hits["/img/p005"] == hits
    assert outputs_complete(_params(listing, out, retry=("http_5xx",)))


def test_a_changed_input_needs_overwrite_and_stored_images_are_not_rewritten(server, reference, tmp_path: Path) -> None:
    listing = _listing(tmp_path, server)
    out = tmp_path / "out"
    collect(_params(listing, out))
    stored = sorted(out.glob("??/??/*"))
    stamps = [p.stat().st_mtime_ns for p in stored]
    listing.write_text(listing.read_text() + f"n01440764_999\t{server.url('/img/p000')}\n")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        collect(_params(listing, out))
    again = collect(_params(listing, out, overwrite=True))
    assert again.rows == 122 and again.status == {"pending": 121, "rejected": 1}
    assert [p.stat().st_mtime_ns for p in stored] == stamps


def test_a_second_run_on_the_same_folder_is_refused_while_one_is_running(server, tmp_path: Path) -> None:
    import threading

    listing = _listing(tmp_path, server, extra=[server.url("/stall")])
    out = tmp_path / "out"
    started = threading.Event()
    first: dict[str, Any] = {}

    def run_first() -> None:
        try:  # the stalled URL keeps this run busy for --timeout seconds after its plan is known
            first["result"] = collect(_params(listing, out, timeout=3.0), tally=lambda snapshot: started.set())
        except BaseException as exc:  # noqa: BLE001 - reported below
            first["error"] = exc
            started.set()

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        assert started.wait(60)
        with pytest.raises(LockedError, match="another imgnet collect run"):
            collect(_params(listing, out))
    finally:
        thread.join(60)
    assert "error" not in first, first.get("error")
    assert first["result"].reasons == {"http_404": 1, "timeout": 1}


@pytest.mark.slow
def test_ray_gives_the_same_files_and_manifest_as_local(server, reference, ray_session, tmp_path: Path) -> None:
    listing, ref_out, _ = reference
    out = tmp_path / "out"
    result = collect(_params(listing, out, executor="ray", address="auto", workers=None))
    assert result.chunks_run == 13
    assert _files(out) == _files(ref_out)
    assert _comparable(out) == _comparable(ref_out)


class _Stop(Exception):
    """Raised from a progress callback: the run stops as if killed after some chunks."""


def test_a_lost_part_is_fetched_again(server, reference, tmp_path: Path) -> None:
    listing, ref_out, _ = reference
    out = tmp_path / "out"
    done: list[int] = []

    def stop_after_five(n: int) -> None:
        done.append(n)
        if len(done) == 5:
            raise _Stop

    with pytest.raises(_Stop):
        collect(_params(listing, out, workers=1), progress=stop_after_five)
    parts = sorted(_work(out).glob("part-*.arrow"))
    assert len(parts) >= 5
    parts[2].unlink()  # as if a power cut lost it (parts are not fsynced)
    again = collect(_params(listing, out))
    assert (again.chunks_run, again.resumed_chunks) == (13 - len(parts) + 1, len(parts) - 1)
    assert _comparable(out) == _comparable(ref_out) and _files(out) == _files(ref_out)


def test_many_small_chunks_assemble_the_same_manifest_as_one_chunk(server, tmp_path: Path) -> None:
    urls = [server.url(f"/img/p{i:03d}") for i in range(6)] + [server.url("/404"), "ftp://example.com/x.jpg", ""]
    listing = tmp_path / "urls__with_repeated_ids.txt"
    ids = ["n01440764_1", "n01440764_2", "n01440764_1", "n01443537_3", "n01440764_1", "n01443537_3", "n01440764_9",
           "n01440764_10", "n01440764_11"]  # ids listed twice and three times: keys made unique across chunks
    listing.write_text("".join(f"{i}\t{u}\n" for i, u in zip(ids, urls)) + "no-tab-line\n")
    one = collect(_params(listing, tmp_path / "one", chunk_rows=1000, workers=1))
    many = collect(_params(listing, tmp_path / "many", chunk_rows=1, workers=2))
    assert (one.chunks, many.chunks) == (1, 10)
    rows = _comparable(tmp_path / "one")
    assert rows == _comparable(tmp_path / "many")
    keys = [r["key"] for r in rows]
    assert len(set(keys)) == len(keys) == 10
    assert keys[:6] == ["train-n01440764_1", "train-n01440764_2", "train-n01440764_1-r2", "train-n01443537_3",
                        "train-n01440764_1-r4", "train-n01443537_3-r5"]
    assert [r["reason"] for r in rows[6:]] == ["http_404", "bad_url", "bad_url", "bad_url"]


def test_an_empty_list_gives_an_empty_manifest(tmp_path: Path) -> None:
    listing = tmp_path / "urls.csv"
    listing.write_text("url,wnid\n")
    result = collect(CollectParams(urls=(str(listing),), out=str(tmp_path / "out"), workers=1))
    assert (result.rows, result.chunks, result.status) == (0, 0, {})
    assert read_table(tmp_path / "out" / "manifest.parquet", "manifest").num_rows == 0
