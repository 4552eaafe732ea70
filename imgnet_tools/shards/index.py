"""DALI webdataset index files (``tools/wds2idx.py`` format v1.2).

First line ``v1.2 <num_samples>``; then one line per sample with, for every component in member
order, ``<ext> <data_offset> <size> <member_name>``. With it, ``fn.readers.webdataset`` opens a
shard without scanning the tar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from imgnet_tools.errors import SchemaError

VERSION = "v1.2"


@dataclass(frozen=True)
class IndexEntry:
    """One component of one sample in the index."""

    ext: str
    offset: int
    size: int
    name: str


def format_index(samples: Sequence[Sequence[IndexEntry]]) -> str:
    """The index text for ``samples`` (each a list of its components in member order)."""
    lines = [f"{VERSION} {len(samples)}"]
    for components in samples:
        lines.append(" ".join(f"{c.ext} {c.offset} {c.size} {c.name}" for c in components))
    return "\n".join(lines) + "\n"


def format_index_columns(keys: Sequence[str], exts: Sequence[str], offsets: Sequence[Sequence[int]],
                         sizes: Sequence[Sequence[int]]) -> str:
    """:func:`format_index` for samples that all have the members ``KEY.ext`` for ``exts`` in
    that order, given as columns (``offsets[j][i]``: component ``j`` of sample ``i``): the same
    text without building an :class:`IndexEntry` per component (the shard writer's fast path)."""
    lines = [f"{VERSION} {len(keys)}"]
    for i, key in enumerate(keys):
        lines.append(" ".join(f"{ext} {offsets[j][i]} {sizes[j][i]} {key}.{ext}" for j, ext in enumerate(exts)))
    return "\n".join(lines) + "\n"


def parse_index(path: str | Path) -> list[list[IndexEntry]]:
    """Parse an index file; raise :class:`SchemaError` on a version or line it does not know."""
    lines = Path(path).read_text(encoding="ascii").splitlines()
    head = lines[0].split() if lines else []
    if len(head) != 2 or head[0] != VERSION or not head[1].isdigit():
        raise SchemaError(f"{path}: first line must be '{VERSION} <num_samples>', found {lines[:1]!r}")
    samples = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(" ")
        if not fields or len(fields) % 4:
            raise SchemaError(f"{path}:{number}: expected groups of '<ext> <offset> <size> <name>'")
        try:
            samples.append([IndexEntry(fields[i], int(fields[i + 1]), int(fields[i + 2]), fields[i + 3])
                            for i in range(0, len(fields), 4)])
        except ValueError as exc:
            raise SchemaError(f"{path}:{number}: {exc}") from exc
    if len(samples) != int(head[1]):
        raise SchemaError(f"{path}: header says {head[1]} samples, found {len(samples)} lines")
    return samples
