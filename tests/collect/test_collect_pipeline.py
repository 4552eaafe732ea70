"""A collect manifest feeds verify, dedup and shard as a scan manifest does; pipelines/from-urls.yaml runs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from imgnet_tools.collect.run import CollectParams, collect
from imgnet_tools.dedup.run import DedupParams, dedup
from imgnet_tools.images.verify import VerifyParams, verify
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.recipes.run import RunParams, run
from imgnet_tools.shards.write import ShardParams, shard
from tests.collect_server import ServerThread
from tests.conftest import REPO
from tests.imagegen import encode, jpeg_bytes, picture

WNIDS = ("n01440764", "n01443537")
IMAGES = {
    **{f"{w}_{i}": jpeg_bytes(500 + 10 * k + i, (96, 72)) for k, w in enumerate(WNIDS) for i in range(4)},
    "png__not_jpeg": encode(picture(77, (80, 60)), "PNG"),
    "tiny__too_small": jpeg_bytes(78, (20, 16)),
}


@pytest.fixture(scope="module")
def server():
    with ServerThread(IMAGES) as srv:
        yield srv


def _listing(folder: Path, server: ServerThread) -> Path:
    rows = ["url,wnid,split"]
    for name in IMAGES:
        wnid = name.split("_")[0] if name.startswith("n0") else WNIDS[0]
        rows.append(f"{server.url('/img/' + name)},{wnid},train")
    rows.append(f"{server.url('/img/' + WNIDS[1] + '_0')},{WNIDS[1]},val")  # the same image again, in val
    rows.append(f"{server.url('/404')},{WNIDS[0]},train")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "urls.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _samples(shards: Path) -> dict[str, bytes]:
    found = {}
    for tar in sorted(shards.glob("*.tar")):
        with tarfile.open(tar) as tf:
            for member in tf.getmembers():
                if member.name.endswith(".jpg"):
                    handle = tf.extractfile(member)
                    assert handle is not None
                    found[member.name[:-4]] = handle.read()
    return found


def test_collect_then_verify_dedup_and_shard(server, tmp_path: Path) -> None:
    listing = _listing(tmp_path, server)
    web = tmp_path / "web"
    collected = collect(CollectParams(urls=(str(listing),), out=str(web), allow_private_hosts=True, workers=2,
                                      chunk_rows=4))
    assert collected.status == {"pending": 11, "rejected": 1}
    manifest = web / "manifest.parquet"
    verified = verify(VerifyParams(manifest=str(manifest), fix=str(web / "fixed"), workers=1))
    assert verified.checked == 11 and verified.status == {"fixed": 1, "ok": 9, "rejected": 2}
    assert verified.reasons == {"http_404": 1, "too_small": 1, "not_jpeg": 1}
    deduped = dedup(DedupParams(manifest=str(manifest), scope="all", workers=1))
    assert (deduped.duplicates, deduped.exact_duplicates) == (1, 1)
    rows = {r["key"]: r for r in read_table(manifest, "manifest").to_pylist()}
    assert rows["train-n01440764-000000011"]["reason"] == "http_404"  # collect's reason survived verify and dedup
    assert rows["train-n01440764-000000011"]["url"] == server.url("/404")
    result = shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "shards"), size=4, workers=1))
    samples = _samples(tmp_path / "shards")
    assert result.samples == len(samples) == 9
    by_key = {r["key"]: r for r in rows.values()}
    for key, data in samples.items():
        row = by_key[key]
        if row["status"] == "ok":  # no transform: shards carry the downloaded bytes as they are
            assert data == IMAGES[row["url"].rsplit("/", 1)[1]]
    dataset = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert [c["wnid"] for c in dataset["classes"]] == list(WNIDS)


def test_the_from_urls_recipe_runs_end_to_end(server, tmp_path: Path) -> None:
    _listing(tmp_path, server)
    overrides = ("collect.allow-private-hosts=true", "collect.workers=1", "verify.workers=1", "dedup.workers=1",
                 "shard.size=4", "shard.resize-short=48", "shard.workers=1")
    params = RunParams(REPO / "pipelines" / "from-urls.yaml", workdir=tmp_path, overrides=overrides)
    result = run(params)
    assert result.status == "ok", result.to_dict()
    assert [(s.stage, s.action) for s in result.steps] == [
        ("collect", "ran"), ("verify", "ran"), ("dedup", "ran"), ("shard", "ran")]
    assert len(_samples(tmp_path / "shards")) == 9
    again = run(params)
    assert [s.action for s in again.steps] == ["skipped"] * 4


def test_a_collected_png_is_fixed_to_jpeg_from_the_stored_bytes(server, tmp_path: Path) -> None:
    listing = tmp_path / "urls.csv"
    listing.write_text(f"url,wnid\n{server.url('/img/png__not_jpeg')},n01440764\n")
    collect(CollectParams(urls=(str(listing),), out=str(tmp_path / "web"), allow_private_hosts=True, workers=1))
    row = read_table(tmp_path / "web" / "manifest.parquet", "manifest").to_pylist()[0]
    assert row["path"].endswith(".png") and Path(row["path"]).read_bytes() == IMAGES["png__not_jpeg"]
    verify(VerifyParams(manifest=str(tmp_path / "web" / "manifest.parquet"), fix=str(tmp_path / "fixed"), workers=1))
    fixed = read_table(tmp_path / "web" / "manifest.parquet", "manifest").to_pylist()[0]
    assert fixed["status"] == "fixed" and fixed["source_path"] == row["path"]
    from PIL import Image

    with Image.open(io.BytesIO(Path(fixed["path"]).read_bytes())) as im:
        assert im.format == "JPEG" and im.size == (80, 60)
