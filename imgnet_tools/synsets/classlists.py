"""Class lists, in one place (no nltk): both file formats, the wnid pattern and the preset table.

``imgnet scan --classes``, ``imgnet synsets build --wnids`` and every other reader of a class list
call :func:`read_class_list`, so a file one command accepts the others accept too. Formats:

* ``classes.tsv`` as written by ``imgnet synsets build``: rows ``index<TAB>wnid<TAB>names``, with or
  without the ``index	wnid	names`` header; the index order is the class order, indices run 0..N-1.
* One class per line, line order being the class order: a leading wnid with anything after it
  taken as its published names (Kaggle's ``LOC_synset_mapping.txt``: ``n01440764 tench, Tinca
  tinca``; ``wnid<TAB>names``), or, where names need not be wnids, the text before the first TAB.
  Blank lines and ``#`` comments are skipped.

``strict_wnids`` (what ``synsets build`` asks for) makes every class a wnid: ``n`` and eight digits.
Malformed and repeated entries are errors naming every line (the first ten are shown).

Presets ship the public lists in ``presets/``:

* ``ilsvrc2012``: the 1,000 ILSVRC-2012 classes in the standard class-index order, with the names
  ImageNet publishes (``ilsvrc2012_wnid_names.tsv``; "crane" and "maillot" each name two classes);
* ``imagenet21k``: the 21,841 classes of the ImageNet-21k "fall11" release, sorted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imgnet_tools.errors import InputError

WNID_RE = re.compile(r"n[0-9]{8}")
_WNID_LEAD_RE = re.compile(r"(n[0-9]{8})(?:\s+(.*))?$")
_TSV_ROW_RE = re.compile(r"[0-9]+\t[^\t]+(\t|$)")  # a classes.tsv row: index TAB wnid [TAB names]
TSV_HEADER = "index\twnid\tnames"
PRESET_DIR = Path(__file__).with_name("presets")


@dataclass(frozen=True)
class Preset:
    """A shipped class list: its wnid file and, where ImageNet publishes them, its names file."""

    wnids_file: str
    names_file: str | None = None
    description: str = ""


PRESETS: dict[str, Preset] = {
    "ilsvrc2012": Preset("ilsvrc2012_wnids.txt", "ilsvrc2012_wnid_names.tsv", "ILSVRC-2012 (ImageNet-1k), 1,000 classes"),
    "imagenet21k": Preset("imagenet21k_fall11_wnids.txt", None, "ImageNet-21k fall11, 21,841 classes"),
}
PRESET_NAMES = tuple(sorted(PRESETS))
MAX_REPORTED = 10


@dataclass(frozen=True)
class ClassList:
    """Class names in index order (wnids, for a wnid list), where each came from, published names."""

    source: str
    names: tuple[str, ...]
    lines: tuple[int, ...] = ()
    words: Mapping[str, str] = field(default_factory=dict)

    @property
    def wnids(self) -> tuple[str, ...]:
        """The class names, for lists whose names are wnids (``synsets build`` reads them so)."""
        return self.names

    def index(self, name: str) -> int | None:
        """Index of ``name`` (None when it is not a class of this list)."""
        lookup: dict[str, int] | None = self.__dict__.get("_lookup")
        if lookup is None:
            lookup = {n: i for i, n in enumerate(self.names)}
            object.__setattr__(self, "_lookup", lookup)
        return lookup.get(name)

    def __len__(self) -> int:
        return len(self.names)


def is_wnid(name: str | None) -> bool:
    """True for a WordNet noun id: ``n`` and eight digits."""
    return name is not None and WNID_RE.fullmatch(name) is not None


def problems_message(source: str, problems: list[str], hint: str = "fix these lines") -> str:
    """One error message for a list of line problems (the first :data:`MAX_REPORTED` shown)."""
    shown = problems[:MAX_REPORTED]
    more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
    return f"{source}: bad class list ({len(problems)} problem(s)); {hint}:\n  " + "\n  ".join(shown) + more


def parse_class_list(text: str, source: str, strict_wnids: bool = False) -> ClassList:
    """Parse a class list in either format; raise :class:`InputError` naming every bad line."""
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    if first.strip() == TSV_HEADER or _TSV_ROW_RE.match(first):
        entries, problems = _tsv_entries(lines)
    else:
        entries, problems = _plain_entries(lines)
    seen: dict[str, int] = {}
    for number, name, _ in entries:
        if strict_wnids and not is_wnid(name):
            problems.append(f"line {number}: {name!r} is not a wnid (expected n followed by 8 digits, e.g. n01440764)")
        elif name in seen:
            problems.append(f"line {number}: {name} repeats line {seen[name]}")
        else:
            seen[name] = number
    if problems:
        problems.sort(key=lambda p: int(p.split(":")[0].split()[1]))
        raise InputError(problems_message(source, problems))
    if not entries:
        raise InputError(f"{source}: the class list is empty; put one class (a wnid) per line.")
    words = {name: w for _, name, w in entries if w}
    return ClassList(source, tuple(n for _, n, _ in entries), tuple(n for n, _, _ in entries), words)


def _plain_entries(lines: list[str]) -> tuple[list[tuple[int, str, str]], list[str]]:
    """(line, name, words) of a one-class-per-line file."""
    entries = []
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _WNID_LEAD_RE.match(stripped)
        if match:
            entries.append((number, match.group(1), (match.group(2) or "").strip()))
        else:
            name, _, words = stripped.partition("\t")
            entries.append((number, name.strip() or stripped.split()[0], words.strip()))
    return entries, []


def _tsv_entries(lines: list[str]) -> tuple[list[tuple[int, str, str]], list[str]]:
    """(line, name, words) of a ``classes.tsv`` in index order; indices must be 0..N-1."""
    by_index: dict[int, tuple[int, str, str]] = {}
    problems = []
    for number, row in enumerate(lines, start=1):
        if not row.strip() or row.strip() == TSV_HEADER or row.lstrip().startswith("#"):
            continue
        cells = row.split("\t")
        if len(cells) < 2 or not cells[0].strip().isdigit() or not cells[1].strip():
            problems.append(f"line {number}: expected 'index<TAB>wnid<TAB>names', got {row[:60]!r}")
            continue
        index = int(cells[0])
        if index in by_index:
            problems.append(f"line {number}: index {index} repeats line {by_index[index][0]}")
            continue
        by_index[index] = (number, cells[1].strip(), cells[2].strip() if len(cells) > 2 else "")
    if by_index and sorted(by_index) != list(range(len(by_index))):
        missing = sorted(set(range(max(by_index) + 1)) - set(by_index))[:5]
        problems.append(f"line {min(n for n, _, _ in by_index.values())}: class indices must run 0..{len(by_index) - 1} "
                        f"without gaps (missing {missing})")
    return [by_index[i] for i in sorted(by_index)], problems


def read_class_list(path: str | Path, strict_wnids: bool = False) -> ClassList:
    """Read and parse a class-list file (see the module docstring for the formats)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read class list {path}: {exc}") from exc
    return parse_class_list(text, str(path), strict_wnids)


def preset_path(name: str) -> Path:
    """Path of a preset's wnid file."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}.")
    path = PRESET_DIR / PRESETS[name].wnids_file
    if not path.is_file():
        raise InputError(f"preset file {path} is missing from this installation; reinstall imgnet-tools.")
    return path


def preset(name: str) -> ClassList:
    """A shipped class list by name (see :data:`PRESETS`), with its published names if any."""
    classes = read_class_list(preset_path(name), strict_wnids=True)
    names_file = PRESETS[name].names_file
    words = dict(classes.words)
    if names_file:
        for line in (PRESET_DIR / names_file).read_text(encoding="utf-8").splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid] = text.strip()
    return ClassList(f"preset {name}", classes.names, classes.lines, words)


def load_classes(path: str | Path | None = None, preset_name: str | None = None,
                 strict_wnids: bool = False) -> ClassList | None:
    """The class list named by a file or a preset; None when neither is given."""
    if path is not None and preset_name is not None:
        raise InputError("give either a class list file or a preset, not both.")
    if preset_name is not None:
        return preset(preset_name)
    return None if path is None else read_class_list(path, strict_wnids)


def derive_classes(names: Iterable[str | None], source: str = "the input's class folders") -> ClassList:
    """Sorted distinct class names found in the input (the ``ImageFolder`` convention)."""
    return ClassList(source, tuple(sorted({n for n in names if n})))


@dataclass
class Resolved:
    """Class rows (in class-index order) and the unknown wnids skipped, as (line, wnid)."""

    rows: list[int]
    wnids: list[str]
    skipped: list[tuple[int, str]]


def resolve(classes: ClassList, row_of: dict[str, int], skip_unknown: bool) -> Resolved:
    """Map wnids to table rows; unknown wnids are an error naming lines unless ``skip_unknown``."""
    rows, kept, unknown = [], [], []
    lines = classes.lines or tuple(range(1, len(classes) + 1))
    for wnid, line in zip(classes.wnids, lines):
        row = row_of.get(wnid)
        if row is None:
            unknown.append((line, wnid))
        else:
            rows.append(row)
            kept.append(wnid)
    if unknown and not skip_unknown:
        problems = [f"line {line}: {wnid} is not a WordNet 3.0 noun" for line, wnid in unknown]
        raise InputError(problems_message(classes.source, problems,
                                          "fix these lines (or pass --skip-unknown to leave them out)"))
    if not rows:
        raise InputError(f"{classes.source}: none of the listed wnids is a WordNet 3.0 noun.")
    return Resolved(rows, kept, unknown)
