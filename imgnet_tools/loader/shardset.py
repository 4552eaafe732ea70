"""A split's shards in a shard directory: tar files, their DALI indexes, the epoch length.

Layout (docs/CONTRACTS.md): ``DIR/{split}-{NNNNNN}.tar`` with ``KEY.jpg``, ``KEY.cls``,
``KEY.json`` per sample, and ``DIR/{split}-{NNNNNN}.idx`` written by ``wds2idx`` ("v1.2 N" header,
then one line per sample). The loaders need both; problems here are run-level errors whose message
says how to rebuild the shards.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from imgnet_tools.errors import InputError

INDEX_VERSION = "v1.2"
REQUIRED_COMPONENTS = ("jpg", "cls")
_SHARD_RE = re.compile(r"^(?P<split>.+)-(?P<index>\d{6})\.tar$")


@dataclass(frozen=True)
class ShardSet:
    """The shards of one split, in index order, with per-shard sample counts."""

    root: Path
    split: str
    tars: tuple[Path, ...]
    indexes: tuple[Path, ...]
    counts: tuple[int, ...]
    num_classes: int | None

    @property
    def samples(self) -> int:
        """Samples in one epoch over every shard."""
        return sum(self.counts)


def _fix_hint(root: Path) -> str:
    return f"rewrite the shards with `imgnet shard MANIFEST --out {root} --overwrite`"


def read_index(path: Path) -> int:
    """Check a DALI ``wds2idx`` index and return its sample count.

    Refuses an unknown header version, a count that disagrees with the lines, a line that is not
    groups of (ext, offset, size, name), and samples lacking a ``jpg`` or ``cls`` component.
    """
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    header = lines[0].split() if lines else []
    if len(header) != 2 or header[0] != INDEX_VERSION or not header[1].isdigit():
        raise InputError(f"{path}: not a DALI index ({INDEX_VERSION} header expected, found "
                         f"{(lines[0] if lines else '')[:40]!r}); {_fix_hint(path.parent)}.")
    if int(header[1]) != len(lines) - 1:
        raise InputError(f"{path}: header says {header[1]} samples but the index lists {len(lines) - 1}; "
                         f"{_fix_hint(path.parent)}.")
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        exts = fields[0::4]
        if not fields or len(fields) % 4 or not all(f.isdigit() for f in fields[1::4] + fields[2::4]):
            raise InputError(f"{path}:{number}: malformed index line; {_fix_hint(path.parent)}.")
        missing = [c for c in REQUIRED_COMPONENTS if c not in exts]
        if missing:
            raise InputError(f"{path}:{number}: sample lacks {'/'.join(missing)}; {_fix_hint(path.parent)}.")
    return len(lines) - 1


def _num_classes(root: Path) -> int | None:
    """Class count from ``dataset.json`` (None when the directory has none)."""
    path = root / "dataset.json"
    if not path.is_file():
        return None
    try:
        classes = json.loads(path.read_text(encoding="utf-8")).get("classes")
    except (ValueError, AttributeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); {_fix_hint(root)}.") from exc
    return len(classes) if isinstance(classes, list) else None


def find_shards(root: str | Path, split: str = "train") -> ShardSet:
    """The shards of ``split`` in ``root``; raises :class:`InputError` naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a directory; pass the --out directory of `imgnet shard`.")
    found: dict[str, list[Path]] = {}
    for path in sorted(root.glob("*.tar")):
        match = _SHARD_RE.match(path.name)
        if match:
            found.setdefault(match["split"], []).append(path)
    tars = found.get(split, [])
    if not tars:
        others = f" (it has splits: {', '.join(sorted(found))})" if found else ""
        raise InputError(f"no shards {split}-NNNNNN.tar in {root}{others}; write them with "
                         f"`imgnet shard MANIFEST --out {root}` or pass --split.")
    indexes = [t.with_suffix(".idx") for t in tars]
    missing = [i.name for i in indexes if not i.is_file()]
    if missing:
        raise InputError(f"{root}: DALI index files missing: {', '.join(missing[:5])}; {_fix_hint(root)}.")
    counts = [read_index(i) for i in indexes]
    if not sum(counts):
        raise InputError(f"{root}: the {split} shards hold no samples; {_fix_hint(root)}.")
    # Empty shards carry nothing and DALI's reader refuses them, so they are left out.
    keep = [i for i, n in enumerate(counts) if n]
    return ShardSet(root, split, tuple(tars[i] for i in keep), tuple(indexes[i] for i in keep),
                    tuple(counts[i] for i in keep), _num_classes(root))
