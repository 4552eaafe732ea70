"""Demo-data shards for the training tests: ``imgnet demo-data`` -> scan -> verify --fix -> shard, for real."""

from __future__ import annotations

from pathlib import Path

from imgnet_tools.demo.data import DemoParams, make_demo
from imgnet_tools.images.scan import ScanParams, scan
from imgnet_tools.images.verify import VerifyParams, verify
from imgnet_tools.shards.write import ShardParams, shard


def demo_shards(root: Path, classes: int = 10, train_per_class: int = 30, val_per_class: int = 6, size: int = 48,
                per_shard: int = 64, seed: int = 0) -> Path:
    """Shards of the demo mini-ImageNet under ``root/shards`` (train and val); returns that folder."""
    data = root / "data"
    make_demo(DemoParams(data, classes=classes, train_per_class=train_per_class, val_per_class=val_per_class,
                         size=size, seed=seed))
    scan(ScanParams(src=(str(data),), out=str(root / "work"), classes=str(data / "wnids.txt"), workers=1))
    verify(VerifyParams(manifest=str(root / "work" / "manifest.parquet"), fix=str(root / "work" / "fixed"), workers=1))
    shard(ShardParams(manifest=str(root / "work" / "manifest.parquet"), out=str(root / "shards"), size=per_shard,
                      workers=1))
    return root / "shards"
