"""collect's parts that need no server: URL lists, the chunk plan, URL safety, header parsing, reasons."""

from __future__ import annotations

import datetime
import email.utils
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imgnet_tools.collect.fetch import classify_error, opted_out, retry_after_seconds
from imgnet_tools.collect.inputs import check_inputs, decode_url, read_rows
from imgnet_tools.collect.plan import class_list, resolve
from imgnet_tools.collect.run import RETRY_REASONS
from imgnet_tools.collect.urls import AddressPolicy, check_url, is_global_address
from imgnet_tools.errors import InputError
from imgnet_tools.images.check import COLLECT_REASONS, REJECT_REASONS
from imgnet_tools.synsets.classlists import ClassList
from imgnet_tools.manifest.schemas import load_schema

# --- URL lists -----------------------------------------------------------------------------------


def _all(paths: list[Path], block: int = 10_000) -> list:
    return [r for b in read_rows(paths, block) for r in b]


def test_csv_with_quoted_newlines_any_case_headers_and_latin1_bytes(tmp_path: Path) -> None:
    path = tmp_path / "urls__mixed.csv"
    path.write_bytes(b'URL,WNID,Split,caption\n'
                     b'http://example.com/a.jpg,n01440764,val,"two\nlines"\n'
                     b'http://example.com/caf\xe9.jpg,n01443537,,plain\n'
                     b',n01440764,,no url\n')
    rows = _all(check_inputs((str(path),)))
    assert [r.row for r in rows] == [0, 1, 2]
    assert rows[0].url == "http://example.com/a.jpg" and rows[0].split == "val" and rows[0].caption == "two\nlines"
    assert rows[1].url == "http://example.com/caf%E9.jpg" and rows[1].split is None
    assert rows[2].url is None and rows[2].wnid == "n01440764"


def test_tsv_parquet_and_jsonl_lists(tmp_path: Path) -> None:
    tsv = tmp_path / "urls.tsv"
    tsv.write_text("url\tlabel\nhttp://e.com/1.jpg\t3\n")
    parquet = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": ["http://e.com/2.jpg", None], "wnid": ["n01440764", "n01443537"],
                             "caption": ["c", None]}), parquet)
    jsonl = tmp_path / "urls__one_bad_line.jsonl"
    jsonl.write_text(json.dumps({"url": "http://e.com/3.jpg", "wnid": "n01440764"}) + "\n{not json\n[1, 2]\n")
    rows = _all(check_inputs((str(tsv), str(parquet), str(jsonl))))
    assert [r.row for r in rows] == [0, 1, 2, 3, 4, 5]
    assert (rows[0].url, rows[0].label) == ("http://e.com/1.jpg", "3")
    assert (rows[1].url, rows[1].wnid, rows[1].caption) == ("http://e.com/2.jpg", "n01440764", "c")
    assert rows[2].url is None
    assert rows[3].url == "http://e.com/3.jpg"
    assert rows[4].error and "not JSON" in rows[4].error and rows[5].error and "not a JSON object" in rows[5].error


def test_fall11_lines_give_wnid_and_id_and_a_line_without_tab_is_a_row(tmp_path: Path) -> None:
    path = tmp_path / "fall11_urls.txt"
    path.write_bytes(b"n02084071_1234\thttp://farm1.static.flickr.com/1/a.jpg\n"
                     b"n02084071_99\thttp://e.com/\xff\xfe.jpg\r\n"
                     b"\n"
                     b"garbage-line-without-tab\n")
    rows = _all(check_inputs((str(path),)))
    assert [(r.id, r.wnid) for r in rows[:2]] == [("n02084071_1234", "n02084071"), ("n02084071_99", "n02084071")]
    assert rows[1].url == "http://e.com/%FF%FE.jpg"
    assert rows[2].url is None and rows[2].error and "no TAB" in rows[2].error


def test_rows_come_in_bounded_blocks(tmp_path: Path) -> None:
    path = tmp_path / "fall11_urls.txt"
    path.write_text("".join(f"n01440764_{i}\thttp://e.com/{i}.jpg\n" for i in range(10)))
    blocks = list(read_rows(check_inputs((str(path),)), block=3))
    assert [len(b) for b in blocks] == [3, 3, 3, 1]
    assert [r.row for b in blocks for r in b] == list(range(10))


def test_list_errors_are_input_errors(tmp_path: Path) -> None:
    no_url = tmp_path / "no_url_column.csv"
    no_url.write_text("path,wnid\na.jpg,n01440764\n")
    with pytest.raises(InputError, match="no 'url' column"):
        _all(check_inputs((str(no_url),)))
    xml = tmp_path / "urls__wrong_suffix.xml"
    xml.write_text("<x/>")
    with pytest.raises(InputError, match="unknown list format"):
        check_inputs((str(xml),))
    with pytest.raises(InputError, match="does not exist"):
        check_inputs((str(tmp_path / "missing.csv"),))


def test_decode_url_percent_encodes_bytes_that_are_not_utf8() -> None:
    assert decode_url("http://e.com/é".encode()) == "http://e.com/é"
    assert decode_url(b"http://e.com/\xe9 ") == "http://e.com/%E9"


# --- the plan: classes, labels, keys --------------------------------------------------------------


def test_plan_resolves_labels_against_the_class_list_and_keys_rows(tmp_path: Path) -> None:
    path = tmp_path / "urls.csv"
    path.write_text("url,wnid,label,split\n"
                    "http://e.com/a,n01443537,,\n"
                    "http://e.com/b,n09999999,,val\n"
                    "http://e.com/c,,1,\n"
                    "http://e.com/d,,7,\n"
                    "http://e.com/e,,x,\n")
    classes = ClassList("test", ("n01440764", "n01443537"))
    rows = [resolve(r, classes, "train") for r in _all([path])]
    assert [(r["label"], r["wnid"], r["reason"]) for r in rows] == [
        (1, "n01443537", None), (None, "n09999999", "unknown_class"), (1, "n01443537", None),
        (None, None, "unknown_class"), (None, None, "unknown_class")]
    assert [r["key"] for r in rows[:3]] == ["train-n01443537-000000000", "val-n09999999-000000001",
                                            "train-n01443537-000000002"]


def test_derived_classes_are_the_sorted_wnids_of_the_lists(tmp_path: Path) -> None:
    path = tmp_path / "fall11_urls.txt"
    path.write_text("n02084071_1\thttp://e.com/1\nn01440764_2\thttp://e.com/2\nn02084071_3\thttp://e.com/3\n")
    classes = class_list([path], None, None)
    assert classes.names == ("n01440764", "n02084071")
    row = resolve(_all([path])[0], classes, "train")
    assert (row["key"], row["label"], row["wnid"]) == ("train-n02084071_1", 1, "n02084071")


# --- URL safety -------------------------------------------------------------------------------------


@pytest.mark.parametrize("address,expected", [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("127.8.9.10", False), ("::1", False), ("10.1.2.3", False), ("192.168.0.1", False),
    ("172.16.5.4", False), ("169.254.169.254", False), ("fe80::1", False), ("100.64.0.1", False),
    ("0.0.0.0", False), ("224.0.0.1", False), ("::ffff:127.0.0.1", False), ("2002:7f00:1::", False),
    ("fc00::1", False), ("not-an-address", False),
])
def test_only_global_unicast_addresses_are_allowed(address: str, expected: bool) -> None:
    assert is_global_address(address) is expected


@pytest.mark.parametrize("url,reason", [
    ("http://example.com/a.jpg", None), ("https://example.com:8443/x?y=1", None),
    (None, "bad_url"), ("", "bad_url"), ("ftp://example.com/a.jpg", "bad_url"), ("file:///etc/passwd", "bad_url"),
    ("javascript:alert(1)", "bad_url"), ("/relative/path.jpg", "bad_url"), ("http://", "bad_url"),
    ("http://exa\nmple.com/", "bad_url"), ("http://example.com:99999/", "bad_url"),
    ("http://127.0.0.1/x", "private_host"), ("http://[::1]:8080/x", "private_host"),
    ("http://169.254.169.254/latest/meta-data/", "private_host"), ("http://10.0.0.5/x", "private_host"),
])
def test_check_url(url: str | None, reason: str | None) -> None:
    assert check_url(url, AddressPolicy())[0] == reason


def test_allowing_one_endpoint_or_all_private_hosts() -> None:
    one = AddressPolicy(allow_hosts=("127.0.0.1:8080",))
    assert check_url("http://127.0.0.1:8080/x", one) == (None, None)
    assert check_url("http://127.0.0.1:8081/x", one)[0] == "private_host"
    assert check_url("http://127.0.0.1:8081/x", AddressPolicy(allow_private=True)) == (None, None)
    assert AddressPolicy(allow_hosts=("[::1]:80",)).allows_endpoint("::1", 80)


# --- response headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("values,expected", [
    ([], False), (["noai"], True), (["NoImageAI"], True), (["noindex, nofollow"], True), (["none"], True),
    (["nofollow"], False), (["imgnet: noimageai"], True), (["otherbot: noindex"], False),
    (["otherbot: noindex", "noai"], True), (["unavailable_after: 25 Jun 2010 15:00:00 PST"], False),
    (["noarchive, unavailable_after: 25 Jun 2010 15:00:00 PST, noindex"], True),
])
def test_x_robots_tag_opt_outs(values: list[str], expected: bool) -> None:
    assert opted_out(values) is expected


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("7") == 7.0
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=120)
    seconds = retry_after_seconds(email.utils.format_datetime(later, usegmt=True))
    assert seconds is not None and 100 < seconds <= 120
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_exceptions_map_to_reasons() -> None:
    import asyncio

    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("h.example", 80, False, True, None, None, None)
    from imgnet_tools.collect.fetch import PrivateHostError

    assert classify_error(aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))) == ("dns", False)
    assert classify_error(aiohttp.ClientConnectorDNSError(key, PrivateHostError("only 10.0.0.1")))[0] == "private_host"
    assert classify_error(aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))) == ("connection", False)
    assert classify_error(aiohttp.ClientConnectorError(key, ConnectionResetError(104, "reset"))) == ("connection", True)
    assert classify_error(aiohttp.ServerDisconnectedError()) == ("connection", True)
    assert classify_error(asyncio.TimeoutError()) == ("timeout", False)
    assert classify_error(aiohttp.ClientPayloadError("short")) == ("truncated", False)


# --- the reason vocabulary ----------------------------------------------------------------------


def test_collect_reasons_are_declared_for_collect_in_the_manifest_schema() -> None:
    declared = load_schema("manifest")["reason_values"]
    emitted = set(COLLECT_REASONS) | set(RETRY_REASONS) | {"unknown_class"}
    assert set(COLLECT_REASONS) <= set(REJECT_REASONS)
    for reason in emitted:
        assert reason in declared, reason
        assert declared[reason].startswith("rejected") and "collect" in declared[reason].split(":")[0], reason
    fields = {f["name"]: f for f in load_schema("manifest")["fields"]}
    for column in ("url", "final_url", "http_status", "fetched_at", "content_type", "caption", "fetch_error"):
        assert fields[column]["stage"] == "collect"
