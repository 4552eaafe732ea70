"""The ILSVRC-2012 devkit's class numbering and validation file names.

The devkit numbers its 1,000 classes ``ILSVRC2012_ID`` 1..1000 in its own order (``map_clsloc.txt``:
ID 1 is n02119789 kit fox), which is *not* the sorted-wnid class index everyone trains with (ID 490,
n01751748 sea snake, is class index 65). Ground-truth files (``ILSVRC2012_validation_ground_truth.txt``)
and challenge submissions use the IDs. The table ships as ``synsets/presets/ilsvrc2012_devkit_ids.tsv``
(``ID<TAB>wnid<TAB>name``).

Validation images are ``ILSVRC2012_val_00000001.JPEG`` .. ``ILSVRC2012_val_00050000.JPEG``; the
devkit's files list one line per image in that (file-name) order.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from imgnet_tools.errors import InputError

IDS_FILE = "ilsvrc2012_devkit_ids.tsv"
VAL_RE = re.compile(r"ILSVRC2012_val_(\d{8})")


def ids_path() -> Path:
    """The shipped ID table."""
    return Path(__file__).resolve().parent.parent / "synsets" / "presets" / IDS_FILE


@functools.lru_cache(maxsize=1)
def id_to_wnid() -> dict[int, str]:
    """ILSVRC2012_ID (1..1000) -> wnid."""
    path = ids_path()
    if not path.is_file():
        raise InputError(f"{path} is missing from this installation; reinstall imgnet-tools.")
    table: dict[int, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        cells = line.split("\t")
        if len(cells) < 2 or not cells[0].isdigit():
            raise InputError(f"{path}:{lineno}: expected 'ID<TAB>wnid<TAB>name'; reinstall imgnet-tools.")
        table[int(cells[0])] = cells[1]
    return table


def val_number(text: str | None) -> int | None:
    """The 1-based validation image number in a key or path (``ILSVRC2012_val_00000007`` -> 7)."""
    if not text:
        return None
    found = VAL_RE.findall(text)
    return int(found[-1]) if found else None


def read_ground_truth(path: str | Path) -> list[int]:
    """A devkit ground-truth file: one ILSVRC2012_ID per line, image 1 first."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read ground truth {path}: {exc}") from exc
    ids = id_to_wnid()
    out = []
    for lineno, line in enumerate(lines, start=1):
        value = line.strip()
        if not value.isdigit() or int(value) not in ids:
            raise InputError(f"{path}:{lineno}: {value[:30]!r} is not an ILSVRC2012_ID (1..1000); a devkit "
                             "ground-truth file has one ID per line.")
        out.append(int(value))
    if not out:
        raise InputError(f"{path} holds no ground truth.")
    return out
