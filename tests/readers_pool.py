"""A small seeded pool run through the real stages, for the reader and local-vs-Ray tests.

:func:`make_pool` writes an ImageNet-shaped folder (train and val, three classes) holding plain
JPEGs, near and exact duplicates (also across splits and across classes, so both dedup reports
have rows), defects verify rejects or fixes, and a non-ASCII file name. :func:`run_stages` runs
``scan -> verify (--fix) -> dedup`` on it with one executor and a tiny chunk size, so every stage
crosses many chunk boundaries, and returns the bytes of every file each stage wrote.
:func:`write_shards` runs ``imgnet shard`` on the result; :func:`shard_samples` reads every sample
back with :mod:`tarfile` and the shard manifests, the reference the shard readers are held to.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.imagegen import make_imagefolder, write_defects, write_duplicates

WNIDS = ["n01440764", "n01443537", "n01484850"]
DEFECT_KINDS = ["cmyk", "truncated_50", "zero_bytes", "grayscale", "png_as_jpeg", "text_as_jpg", "exif_rotated",
                "palette_alpha"]
CHUNK_ROWS = 4
# What each stage writes under the run folder (besides the fixed copies, compared as a folder).
STAGE_FILES = {
    "scan": ("manifest.parquet",),
    "verify": ("manifest.parquet",),
    "dedup": ("manifest.parquet", "dedup_label_conflicts.parquet", "dedup_split_leakage.parquet", "dedup.json"),
}


def make_pool(root: Path) -> Path:
    """Write the pool under ``root`` (``root/train/WNID/...``, ``root/val/WNID/...``); returns ``root``."""
    make_imagefolder(root / "train", WNIDS, 5, seed=1)
    make_imagefolder(root / "val", WNIDS, 2, seed=2)
    made = write_duplicates(root / "train" / WNIDS[0], seed=3, name="a")
    write_duplicates(root / "val" / WNIDS[0], seed=3, name="a")  # the same pictures in val: leakage
    shutil.copyfile(made["orig"], root / "train" / WNIDS[2] / "copy_of_a_in_another_class.jpg")  # a label conflict
    write_defects(root / "train" / WNIDS[1], seed=4, kinds=DEFECT_KINDS)
    shutil.copyfile(made["distinct"], root / "train" / WNIDS[2] / "ünïcödé_фото.jpg")
    return root


def run_stages(pool: Path, run: Path, executor: str, chunk_rows: int = CHUNK_ROWS) -> dict[str, dict[str, bytes]]:
    """scan -> verify -> dedup of ``pool`` into ``run`` (``run/fixed`` for the fixed copies) with
    ``executor`` (``local``: two pool workers; ``ray``: the Ray this process is connected to).

    Returns, per stage, the bytes of every file it wrote, read as soon as it finished (the next
    stage rewrites the manifest in place).
    """
    from imgnet_tools.dedup.run import DedupParams, dedup
    from imgnet_tools.images.scan import ScanParams, scan
    from imgnet_tools.images.verify import VerifyParams, verify

    executor_args: dict[str, object] = {"executor": executor, "workers": 2 if executor == "local" else None}
    if executor == "ray":
        executor_args["address"] = "auto"
    manifest = run / "manifest.parquet"
    seen: dict[str, dict[str, bytes]] = {}
    scan(ScanParams(src=(str(pool),), out=str(run), chunk_rows=chunk_rows, **executor_args))  # type: ignore[arg-type]
    seen["scan"] = _files(run, "scan")
    verify(VerifyParams(manifest=str(manifest), fix=str(run / "fixed"), chunk_rows=chunk_rows,
                        **executor_args))  # type: ignore[arg-type]
    seen["verify"] = _files(run, "verify")
    seen["fixed"] = {p.name: p.read_bytes() for p in sorted((run / "fixed").iterdir())}
    dedup(DedupParams(str(manifest), chunk_rows=chunk_rows, **executor_args))  # type: ignore[arg-type]
    seen["dedup"] = _files(run, "dedup")
    return seen


def _files(run: Path, stage: str) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in STAGE_FILES[stage]}


# --- shards -----------------------------------------------------------------------------------------

SHARD_SIZE = 7


@dataclass(frozen=True)
class Sample:
    """One sample as the shard files hold it: its tar, its member bytes, and its shard-manifest row."""

    shard: str
    jpg: bytes
    cls: bytes
    json: bytes
    row: dict[str, Any]


def write_shards(manifest: Path, out: Path) -> Path:
    """``imgnet shard MANIFEST --out OUT --size 7`` (the real command, in this process); returns ``out``."""
    from click.testing import CliRunner

    from imgnet_tools.cli.main import cli

    result = CliRunner().invoke(cli, ["shard", str(manifest), "--out", str(out), "--size", str(SHARD_SIZE),
                                      "--workers", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def shard_samples(shards: Path) -> dict[str, Sample]:
    """Every sample of ``shards`` by key: the members read with :mod:`tarfile`, the row from the
    shard's own manifest slice (``TAR.parquet``), checked here against each other and against the
    folder's ``manifest.parquet`` (the slices in shard order)."""
    import pyarrow.parquet as pq

    samples: dict[str, Sample] = {}
    tars = sorted(shards.glob("*.tar"))
    whole = pq.read_table(shards / "manifest.parquet").to_pylist()
    assert whole == [row for tar in tars for row in pq.read_table(tar.with_suffix(".parquet")).to_pylist()]
    for tar in tars:
        rows = pq.read_table(tar.with_suffix(".parquet")).to_pylist()
        with tarfile.open(tar) as archive:
            members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore[union-attr]
        assert len(members) == 3 * len(rows), tar.name
        for row in rows:
            key = row["key"]
            sample = Sample(tar.name, members[f"{key}.jpg"], members[f"{key}.cls"], members[f"{key}.json"], row)
            assert hashlib.sha256(sample.jpg).hexdigest() == row["sha256"], key
            assert sample.cls == str(row["label"]).encode(), key
            assert json.loads(sample.json)["label"] == row["label"], key
            assert key not in samples
            samples[key] = sample
    return samples
