"""Class lists: which class names exist and their indices.

Accepted sources, in order of precedence:

* ``--classes FILE``: either a ``classes.tsv`` written by ``imgnet synsets build`` (rows
  ``index<TAB>wnid<TAB>names``, with or without that header line; index order is the class
  order) or a plain file with one class name (usually a wnid) per line, line order being the
  class order; text after a leading wnid is ignored, so ``LOC_synset_mapping.txt`` and
  ``wnid<TAB>names`` files work as they are. Blank lines and ``#`` comments
  are ignored.
* ``--preset ilsvrc2012|imagenet21k``: the preset wnid files in ``imgnet_tools/synsets/presets/``
  (read as plain files; nltk is never imported here).
* neither: the sorted class names found in the input (torchvision ``ImageFolder`` order).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from imgnet_tools.errors import InputError

WNID_RE = re.compile(r"n\d{8}")
PRESET_FILES = {
    "ilsvrc2012": "ilsvrc2012_wnids.txt",
    "imagenet21k": "imagenet21k_fall11_wnids.txt",
}
TSV_HEADER = "index\twnid\tnames"
WNID_LEAD_RE = re.compile(r"(n\d{8})(?:\s|$)")
TSV_ROW_RE = re.compile(r"\d+\t[^\t]+\t")  # a classes.tsv row: index TAB wnid TAB names


@dataclass(frozen=True)
class ClassList:
    """Class names in index order, with a name -> index lookup."""

    names: tuple[str, ...]

    def index(self, name: str) -> int | None:
        """Index of ``name`` (None when it is not a class of this list)."""
        return self._lookup().get(name)

    def _lookup(self) -> dict[str, int]:
        cached: dict[str, int] | None = self.__dict__.get("_cache")
        if cached is None:
            cached = {n: i for i, n in enumerate(self.names)}
            object.__setattr__(self, "_cache", cached)
        return cached

    def __len__(self) -> int:
        return len(self.names)


def is_wnid(name: str | None) -> bool:
    """True for a WordNet noun id: ``n`` and eight digits."""
    return bool(name) and WNID_RE.fullmatch(name or "") is not None


def preset_path(preset: str) -> Path:
    """Path of a preset's wnid file (shipped by the synsets package)."""
    if preset not in PRESET_FILES:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(sorted(PRESET_FILES))}.")
    return Path(__file__).resolve().parent.parent / "synsets" / "presets" / PRESET_FILES[preset]


def load_classes(path: str | Path | None = None, preset: str | None = None) -> ClassList | None:
    """The class list named by a file or a preset; None when neither is given."""
    if path is not None and preset is not None:
        raise InputError("give either a class list file or a preset, not both.")
    if preset is not None:
        path = preset_path(preset)
        if not path.is_file():
            raise InputError(f"preset file {path} is missing from this installation; reinstall imgnet-tools.")
    if path is None:
        return None
    return read_class_file(Path(path))


def read_class_file(path: Path) -> ClassList:
    """Read a ``classes.tsv`` (by its header) or a one-name-per-line file; refuse duplicates."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read class list {path}: {exc}") from exc
    if lines and lines[0].strip() == TSV_HEADER:
        names = _tsv_names(path, lines[1:])
    elif lines and TSV_ROW_RE.match(lines[0]):
        names = _tsv_names(path, lines)
    else:
        names = [_first_field(ln) for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not names:
        raise InputError(f"class list {path} holds no classes.")
    seen: set[str] = set()
    for lineno, name in enumerate(names, start=1):
        if name in seen:
            raise InputError(f"class list {path}: class {name!r} appears twice (entry {lineno}).")
        seen.add(name)
    return ClassList(tuple(names))


def _first_field(line: str) -> str:
    """The class name of a plain line: a leading wnid (``n01440764 tench, Tinca tinca`` as in
    LOC_synset_mapping.txt, or ``wnid<TAB>names``), else the text before the first TAB."""
    match = WNID_LEAD_RE.match(line.strip())
    return match.group(1) if match else line.split("\t")[0].strip()


def _tsv_names(path: Path, rows: list[str]) -> list[str]:
    """wnids of a ``classes.tsv`` in index order; indices must be 0..N-1."""
    by_index: dict[int, str] = {}
    for lineno, row in enumerate(rows, start=2):
        if not row.strip():
            continue
        cells = row.split("\t")
        try:
            by_index[int(cells[0])] = cells[1].strip()
        except (ValueError, IndexError) as exc:
            raise InputError(f"{path}:{lineno}: expected 'index<TAB>wnid<TAB>names', got {row[:60]!r}") from exc
    if sorted(by_index) != list(range(len(by_index))):
        raise InputError(f"{path}: class indices must run 0..{len(by_index) - 1} without gaps.")
    return [by_index[i] for i in range(len(by_index))]


def derive_classes(names: Iterable[str | None]) -> ClassList:
    """Sorted distinct class names found in the input (the ``ImageFolder`` convention)."""
    return ClassList(tuple(sorted({n for n in names if n})))
