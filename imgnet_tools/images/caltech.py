"""The Caltech-101 layout for ``imgnet scan``: ``101_ObjectCategories/<category>/image_NNNN.jpg``.

A SRC is read this way when it is a folder named ``101_ObjectCategories`` or holds one (the
unpacked ``caltech-101/`` archive, whose ``Annotations/`` folder is then left alone). Every
sub-folder is a category, every file in it an image of that category; ``BACKGROUND_Google`` (the
clutter class of the original benchmark, not an object category) is left out unless
``include_background``. Caltech has no splits: every image goes to ``--split`` (default ``train``).

Labels follow the usual class-list rules (sorted category names, as ImageFolder does, unless
``--classes``). Category names are mapped to wnids where a WordNet lemma matches
(:mod:`imgnet_tools.synsets.lemmas`), so the manifest's ``wnid`` column is filled for the matched
ones and stays null for the rest; scan writes ``caltech_classes.json`` (schema ``caltech_classes``)
beside the manifest with every name, its image count and what it matched, and the report shows it.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imgnet_tools.images.sources import Candidate

if TYPE_CHECKING:  # pragma: no cover
    from imgnet_tools.synsets.classlists import ClassList
    from imgnet_tools.synsets.lemmas import Match

CATEGORIES_DIR = "101_ObjectCategories"
BACKGROUND = "BACKGROUND_Google"
DEFAULT_SPLIT = "train"
TABLE = "caltech_classes.json"


def categories_root(src: Path) -> Path | None:
    """The ``101_ObjectCategories`` folder ``src`` is or holds, else None."""
    if src.name == CATEGORIES_DIR and src.is_dir():
        return src
    inner = src / CATEGORIES_DIR
    return inner if inner.is_dir() else None


def _categories(root: Path, include_background: bool, exclude: Sequence[str] = ()) -> list[os.DirEntry[str]]:
    with os.scandir(root) as it:
        folders = sorted((e for e in it if e.is_dir() and not e.name.startswith(".")), key=lambda e: e.name)
    return [f for f in folders if not ((f.name == BACKGROUND and not include_background) or f.path in exclude)]


def category_names(root: Path, include_background: bool) -> list[str]:
    """The category names of a ``101_ObjectCategories`` folder (the class names a scan derives)."""
    return [f.name for f in _categories(root, include_background)]


def candidates(root: Path, split: str | None, include_background: bool,
               exclude: Sequence[str] = ()) -> Iterator[Candidate]:
    """One candidate per file under ``root/<category>/`` (sorted), the background class left out by default."""
    for folder in _categories(root, include_background, exclude):
        with os.scandir(folder.path) as it:
            files = sorted((e for e in it if not e.name.startswith((".", ".tmp-"))), key=lambda e: e.name)
        for entry in files:
            reason = None if not entry.is_dir() else "not_a_file"
            yield Candidate(entry.path, split or DEFAULT_SPLIT, class_name=folder.name, reason=reason,
                            split_defaulted=split is None)


def roots(srcs: Sequence[str]) -> list[Path]:
    """The Caltech category folders among the scan's SRC arguments."""
    found = []
    for src in srcs:
        path = Path(os.path.abspath(src))
        root = categories_root(path) if path.is_dir() else None
        if root is not None:
            found.append(root)
    return found


def _matches(names: tuple[str, ...]) -> tuple[tuple[Match, ...], str]:
    """Lemma matches of ``names``, read once per process for the same names and WordNet setting."""
    from imgnet_tools.places import current

    return _cached_matches(names, current().wordnet_dir or "")


@functools.lru_cache(maxsize=4)
def _cached_matches(names: tuple[str, ...], wordnet_dir: str) -> tuple[tuple[Match, ...], str]:
    from imgnet_tools.synsets.lemmas import match_names

    matches, note = match_names(list(names), wordnet_dir or None)
    return tuple(matches), note


def class_names(srcs: Sequence[str], classes: ClassList) -> tuple[str, ...]:
    """The class names that came from a Caltech layout (empty when no SRC is one)."""
    if not roots(srcs):
        return ()
    from imgnet_tools.synsets.classlists import is_wnid

    return tuple(n for n in classes.names if n and not is_wnid(n))


def wnids_by_name(srcs: Sequence[str], classes: ClassList) -> dict[str, str]:
    """Category name -> matched wnid, for a scan with a Caltech layout (empty without one)."""
    names = class_names(srcs, classes)
    if not names:
        return {}
    matches, _ = _matches(names)
    return {m.category: m.wnid for m in matches if m.wnid}


def write_table(out_dir: Path, srcs: Sequence[str], classes: ClassList, images: Counter[str],
                include_background: bool) -> Path | None:
    """Write ``caltech_classes.json`` beside the manifest (None when no SRC is a Caltech layout);
    ``images``: how many rows each class name has."""
    from imgnet_tools.manifest.atomic import atomic_write_text
    from imgnet_tools.manifest.schemas import format_version, validate_json

    names = class_names(srcs, classes)
    if not names:
        return None
    matches, note = _matches(names)
    doc = {
        "format_version": format_version("caltech_classes"),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "dataset": "Caltech-101", "roots": [str(r) for r in roots(srcs)], "include_background": include_background,
        "note": note,
        "counts": dict(sorted(Counter(m.status for m in matches).items())),
        "classes": [{**m.to_dict(), "images": images.get(m.category, 0)} for m in matches],
    }
    validate_json(doc, "caltech_classes", TABLE)
    path = out_dir / TABLE
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return path
