"""Class lists: a file of wnids (``--wnids FILE``) or a shipped preset (``--preset NAME``).

A list file holds one class per line: a wnid (``n`` + 8 digits) as the first whitespace-separated
field; anything after it on the line (names, as in Kaggle's ``LOC_synset_mapping.txt``) is
ignored. Blank lines and lines starting with ``#`` are skipped. The class index is the position
in the file (0-based, counting class lines only). A malformed or repeated wnid is an error that
names the line; an unknown wnid (not a WordNet 3.0 noun) is an error too, unless skipped.

Presets ship the public lists in ``presets/``:

* ``ilsvrc2012``: the 1,000 ILSVRC-2012 classes in the standard class-index order, with the names
  ImageNet publishes (``ilsvrc2012_wnid_names.tsv``; "crane" and "maillot" each name two classes);
* ``imagenet21k``: the 21,841 classes of the ImageNet-21k "fall11" release, sorted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from imgnet_tools.errors import InputError

WNID_RE = re.compile(r"n[0-9]{8}")
PRESET_DIR = Path(__file__).with_name("presets")
PRESETS: dict[str, tuple[str, str | None]] = {
    "ilsvrc2012": ("ilsvrc2012_wnids.txt", "ilsvrc2012_wnid_names.tsv"),
    "imagenet21k": ("imagenet21k_fall11_wnids.txt", None),
}
MAX_REPORTED = 10


@dataclass
class ClassList:
    """Wnids in class-index order, the line each came from, and published names if any."""

    source: str
    wnids: list[str]
    lines: list[int]
    names: dict[str, str] = field(default_factory=dict)


def _problems_message(source: str, problems: list[str]) -> str:
    shown = problems[:MAX_REPORTED]
    more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
    return f"{source}: bad class list ({len(problems)} problem(s)); fix these lines:\n  " + "\n  ".join(shown) + more


def parse_class_list(text: str, source: str) -> ClassList:
    """Parse a class list; raise :class:`InputError` naming every malformed or repeated line."""
    wnids: list[str] = []
    lines: list[int] = []
    first_seen: dict[str, int] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        token = stripped.split()[0]
        if not WNID_RE.fullmatch(token):
            problems.append(f"line {number}: {token!r} is not a wnid (expected n followed by 8 digits, e.g. n01440764)")
        elif token in first_seen:
            problems.append(f"line {number}: {token} repeats line {first_seen[token]}")
        else:
            first_seen[token] = number
            wnids.append(token)
            lines.append(number)
    if problems:
        raise InputError(_problems_message(source, problems))
    if not wnids:
        raise InputError(f"{source}: the class list is empty; put one wnid per line.")
    return ClassList(source, wnids, lines)


def read_class_list(path: str | Path) -> ClassList:
    """Read and parse a class-list file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read class list {path}: {exc}") from exc
    return parse_class_list(text, str(path))


def _read_names(path: Path) -> dict[str, str]:
    names = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        wnid, _, name = line.partition("\t")
        names[wnid] = name.strip()
    return names


def preset(name: str) -> ClassList:
    """A shipped class list by name (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}.")
    wnids_file, names_file = PRESETS[name]
    classes = read_class_list(PRESET_DIR / wnids_file)
    classes.source = f"preset {name}"
    if names_file:
        classes.names = _read_names(PRESET_DIR / names_file)
    return classes


@dataclass
class Resolved:
    """Class rows (in class-index order) and the unknown wnids skipped, as (line, wnid)."""

    rows: list[int]
    wnids: list[str]
    skipped: list[tuple[int, str]]


def resolve(classes: ClassList, row_of: dict[str, int], skip_unknown: bool) -> Resolved:
    """Map wnids to table rows; unknown wnids are an error naming lines unless ``skip_unknown``."""
    rows, kept, unknown = [], [], []
    for wnid, line in zip(classes.wnids, classes.lines):
        row = row_of.get(wnid)
        if row is None:
            unknown.append((line, wnid))
        else:
            rows.append(row)
            kept.append(wnid)
    if unknown and not skip_unknown:
        problems = [f"line {line}: {wnid} is not a WordNet 3.0 noun" for line, wnid in unknown]
        raise InputError(_problems_message(classes.source, problems).replace(
            "fix these lines:", "fix these lines (or pass --skip-unknown to leave them out):"))
    if not rows:
        raise InputError(f"{classes.source}: none of the listed wnids is a WordNet 3.0 noun.")
    return Resolved(rows, kept, unknown)
