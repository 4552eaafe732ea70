"""A small real dataset for the votes tests: images, a scanned and verified manifest, and the
synset table built by the real `imgnet synsets build --wnids` (real WordNet 3.0 through nltk)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests import imagegen

# tench, goldfish, great white shark: ILSVRC-2012's first three classes.
WNIDS = ["n01440764", "n01443537", "n01484850"]


@dataclass(frozen=True)
class VotesData:
    root: Path
    manifest: Path
    synsets: Path  # the folder synsets build wrote
    votes: Path  # where the votes table goes (not created)


def build_synsets(tmp: Path, wnids: list[str] = WNIDS) -> Path:
    """synsets.parquet and friends, from the real `imgnet synsets build --wnids FILE`."""
    from imgnet_tools.synsets.build import BuildParams, build_synsets as build

    listed = tmp / "wnids.txt"
    listed.write_text("\n".join(wnids) + "\n")
    out = tmp / "synsets"
    build(BuildParams(out=str(out), wnids=str(listed)))
    return out


def make_votes_data(tmp: Path, per_class: int = 6, wnids: list[str] = WNIDS) -> VotesData:
    """``per_class`` JPEGs per class, scanned with the built class list and verified."""
    from imgnet_tools.images.scan import ScanParams, scan
    from imgnet_tools.images.verify import VerifyParams, verify

    synsets = build_synsets(tmp, wnids)
    imagegen.make_imagefolder(tmp / "data" / "train", wnids, per_class=per_class, size=(96, 72))
    work = tmp / "work"
    scan(ScanParams(src=(str(tmp / "data"),), out=str(work), classes=str(synsets / "classes.tsv"), workers=1))
    verify(VerifyParams(manifest=str(work / "manifest.parquet"), workers=1))
    return VotesData(tmp, work / "manifest.parquet", synsets, work / "votes.parquet")
