"""scan -> verify -> dedup on generated files (tests/imagegen.py): the stages fit together."""

from __future__ import annotations

from pathlib import Path

from imgnet_tools.dedup.run import DedupParams, dedup
from imgnet_tools.images.scan import ScanParams, scan
from imgnet_tools.images.verify import VerifyParams, verify
from imgnet_tools.manifest.parquet import read_table
from tests.imagegen import tree_hashes, write_duplicates

# imagegen's variants that must join the original's cluster at the default threshold; crop5 (5%
# off every side) and the mirror image are not near duplicates for a DCT hash at 8 bits.
MUST_JOIN = ("exact", "reencode_q50", "resize50", "brighten10", "png_copy", "gray")


def test_scan_verify_dedup(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = write_duplicates(data / "train" / "n01440764", seed=3, name="a")
    leak = write_duplicates(data / "val" / "n01440764", seed=3, name="a")  # the same pictures in val
    before = tree_hashes(data)
    work = tmp_path / "work"
    scan(ScanParams(src=(str(data),), out=str(work), workers=1))
    manifest = work / "manifest.parquet"
    verify(VerifyParams(manifest=str(manifest), allow_grayscale=True, workers=1))
    result = dedup(DedupParams(str(manifest), workers=1))
    rows = read_table(manifest, "manifest").to_pylist()
    by_path = {Path(r["source_path"]).resolve(): r for r in rows}
    train = {name: by_path[p.resolve()] for name, p in made.items()}
    usable = {n for n, r in train.items() if (r["pre_dedup_status"] or r["status"]) in ("ok", "fixable", "fixed")}
    assert {"orig", "exact", "resize50", "distinct", "flip_lr"} <= usable
    cluster = train["orig"]["cluster_id"]
    assert cluster is not None
    for name in MUST_JOIN:
        if name in usable:
            assert train[name]["cluster_id"] == cluster, name
    # Not duplicates of the original (each is clustered only with its own copy in val).
    assert train["flip_lr"]["cluster_id"] != cluster and train["distinct"]["cluster_id"] != cluster
    kept = [n for n, r in train.items() if r["cluster_id"] == cluster and r["status"] != "duplicate"]
    assert len(kept) == 1  # one keeper per cluster, class and split
    assert train["exact"]["status"] == "duplicate" or train["orig"]["status"] == "duplicate"
    # Every picture of train is also in val: the leakage report holds both sides.
    leakage = read_table(Path(result.reports["split_leakage"]), "dedup_split_leakage").to_pylist()
    assert {r["split"] for r in leakage} == {"train", "val"}
    assert Path(leak["orig"]).resolve() in {Path(r["path"]).resolve() for r in leakage}
    assert tree_hashes(data) == before
