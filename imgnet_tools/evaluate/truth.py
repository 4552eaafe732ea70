"""Ground truth for ``imgnet eval``: the class list, and the true class of every image to score.

Sources:

* a manifest (``--manifest``): the candidate pool's ``manifest.parquet`` (rows of the split with a
  label and status ``ok`` or ``fixed``; the others are *excluded*, with the reason counted) or a shard
  directory's ``manifest.parquet`` (every row of the split; keys are the pool keys, its
  ``source_key``, which is what ``imgnet predict`` writes);
* a devkit ground-truth file (``--truth``): one ILSVRC2012_ID per line for images 1, 2, ...; the
  classes are then ILSVRC-2012's 1,000 in the standard sorted-wnid order.

The class list (index -> wnid, name) is ``--classes`` when given (a ``classes.tsv`` or one wnid per
line), else the shard directory's ``dataset.json`` beside a shard manifest, else the (label, wnid)
pairs the manifest holds.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgnet_tools.errors import InputError
from imgnet_tools.evaluate import devkit

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

USABLE = ("ok", "fixed")


@dataclass(frozen=True)
class ClassSpace:
    """Classes in index order: wnid (None when unknown) and a display name."""

    wnids: tuple[str | None, ...]
    names: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.wnids)

    def index_of(self) -> dict[str, int]:
        """wnid -> class index."""
        return {w: i for i, w in enumerate(self.wnids) if w is not None}

    def label(self, index: int) -> str:
        """``wnid name`` for people (``#index`` when neither is known)."""
        if not 0 <= index < len(self.wnids):
            return f"#{index}"
        parts = [p for p in (self.wnids[index], self.names[index]) if p]
        return " ".join(parts) if parts else f"#{index}"


@dataclass
class Truth:
    """The images to score, in a fixed order, with what is known about each."""

    source: str
    split: str | None
    classes: ClassSpace
    labels: "np.ndarray"
    keys: tuple[str, ...] | None
    numbers: tuple[int | None, ...]  # ILSVRC2012_val number (1-based) per row, when the name has one
    file_names: tuple[str, ...]  # base name of each row's file (file-name order for the devkit format)
    excluded: dict[str, str] = field(default_factory=dict)  # key in the manifest -> why it is not scored

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def ilsvrc_classes() -> ClassSpace:
    """ILSVRC-2012's classes in the standard (sorted wnid) order, with their names."""
    from imgnet_tools.synsets.classlists import preset

    classes = preset("ilsvrc2012")
    names = {w: text.split(",")[0].strip() for w, text in classes.words.items()}
    return ClassSpace(tuple(classes.wnids), tuple(names.get(w) for w in classes.wnids))


def classes_from_file(path: str | Path) -> ClassSpace:
    """A ``--classes`` file: ``classes.tsv`` from ``imgnet synsets build`` or one wnid per line."""
    from imgnet_tools.synsets.classlists import is_wnid, read_class_list

    classes = read_class_list(path)
    words = {n: text.split(",")[0].strip() for n, text in classes.words.items()}
    return ClassSpace(tuple(n if is_wnid(n) else None for n in classes.names),
                      tuple(words.get(n, n) for n in classes.names))


def _classes_from_dataset(path: Path) -> ClassSpace | None:
    if not path.is_file():
        return None
    try:
        classes = json.loads(path.read_text(encoding="utf-8")).get("classes") or []
    except (OSError, ValueError, AttributeError):
        return None
    by_index = {int(c["index"]): c for c in classes if isinstance(c, dict) and "index" in c}
    if not by_index or sorted(by_index) != list(range(len(by_index))):
        return None
    return ClassSpace(tuple(by_index[i].get("wnid") for i in range(len(by_index))),
                      tuple(by_index[i].get("name") for i in range(len(by_index))))


def _classes_from_rows(labels: list[int | None], wnids: list[str | None], where: str) -> ClassSpace:
    seen: dict[int, str | None] = {}
    for label, wnid in zip(labels, wnids, strict=True):
        if label is None or label < 0:
            continue
        if label in seen and seen[label] != wnid:
            raise InputError(f"{where}: class {label} has two wnids ({seen[label]}, {wnid}); pass --classes.")
        seen[label] = wnid
    size = max(seen, default=-1) + 1
    return ClassSpace(tuple(seen.get(i) for i in range(size)), tuple(None for _ in range(size)))


def _schema_of(path: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path} is not a readable Parquet file: {exc}") from exc
    name = meta.get(b"imgnet.schema", b"").decode()
    if name not in ("manifest", "shard_manifest"):
        raise InputError(f"{path} is a {name or 'foreign'} table; pass the manifest.parquet of `imgnet scan` or of "
                         "a shard directory.")
    return name


def from_manifest(path: str | Path, split: str | None, classes: ClassSpace | None) -> Truth:
    """The labelled, usable rows of ``split`` (every split when None) of a pool or shard manifest."""
    import numpy as np
    import pyarrow.parquet as pq

    from imgnet_tools.manifest.parquet import read_table

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; pass the manifest.parquet of `imgnet scan` or of a shard directory.")
    schema = _schema_of(path)
    present = set(pq.read_schema(path).names)
    wanted = ["key", "split", "label", "wnid", "status", "source_key", "source_path", "path"]
    table = read_table(path, schema, columns=[c for c in wanted if c in present])
    col: dict[str, list[Any]] = {c: table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
                                 for c in wanted}
    keys = col["source_key"] if schema == "shard_manifest" else col["key"]
    if classes is None and schema == "shard_manifest":
        classes = _classes_from_dataset(path.parent / "dataset.json")
    if classes is None:
        classes = _classes_from_rows(col["label"], col["wnid"], str(path))
    kept: list[int] = []
    excluded: dict[str, str] = {}
    for i, key in enumerate(keys):
        label, status = col["label"][i], col["status"][i]
        if split is not None and col["split"][i] != split:
            excluded[key] = "other_split"
        elif label is None or label < 0:
            excluded[key] = "unlabelled"
        elif schema == "manifest" and status not in USABLE:
            excluded[key] = f"status_{status}"
        elif label >= len(classes):
            raise InputError(f"{path}: row {key} has label {label} but the class list has {len(classes)} classes; "
                             "pass the matching --classes.")
        else:
            kept.append(i)
    if not kept:
        splits = sorted(Counter(s for s in col["split"] if s))
        raise InputError(f"{path}: no labelled usable rows in split {split!r} (splits there: {', '.join(splits)}); "
                         "pass --split.")
    files = [os.path.basename(col["source_path"][i] or col["path"][i] or keys[i]) for i in kept]
    numbers = tuple(devkit.val_number(files[j]) or devkit.val_number(keys[i]) for j, i in enumerate(kept))
    return Truth(str(path), split, classes, np.array([col["label"][i] for i in kept], dtype=np.int64),
                 tuple(keys[i] for i in kept), numbers, tuple(files), excluded)


def from_devkit(path: str | Path) -> Truth:
    """A devkit ground-truth file; classes are ILSVRC-2012's in sorted-wnid order."""
    import numpy as np

    ids = devkit.read_ground_truth(path)
    classes = ilsvrc_classes()
    index = classes.index_of()
    table = devkit.id_to_wnid()
    labels = np.array([index[table[i]] for i in ids], dtype=np.int64)
    numbers = tuple(range(1, len(ids) + 1))
    files = tuple(f"ILSVRC2012_val_{n:08d}.JPEG" for n in numbers)
    return Truth(str(path), None, classes, labels, None, numbers, files)
