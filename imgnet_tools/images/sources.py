"""Find candidate files and what the layout says about them (split, class), without reading pixels.

Layouts, per SRC argument:

* a dataset root holding ``train/``, ``val/`` and/or ``test/``: each is a split folder;
* a split folder (named train/val/test, or any name with ``--split``; any other folder is ``train``
  unless ``--split`` says otherwise): sub-folders are classes (ImageFolder: ``train/n01440764/x.JPEG``, nested folders allowed),
  files directly inside are unlabelled unless ``--val-labels`` names their class (the ILSVRC
  validation layout: a flat folder of ``ILSVRC2012_val_00000001.JPEG`` plus a ground-truth file);
* a list file (``.csv``, ``.tsv`` or ``.parquet``) with columns ``path`` and ``label`` (class index)
  or ``wnid`` (class name), and optionally ``split`` (``train`` where a row has none and ``--split``
  is not given); relative paths are relative to the list file.

Candidates come as a stream (a 14M-row list is never held), each file once. Symlinks that stay
inside the SRC folder are followed; one that leads back into its own ancestry is reported as a
``symlink_loop`` row instead of being walked forever, and one that leads outside the SRC folder is
a ``symlink_outside`` row, not followed, unless ``--follow-symlinks``.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING
from dataclasses import dataclass
from pathlib import Path

from imgnet_tools.errors import DependencyError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from imgnet_tools.manifest.hashset import HashSet64

SPLITS = ("train", "val", "test")
DEFAULT_SPLIT = "train"
LIST_SUFFIXES = (".csv", ".tsv", ".parquet")


@dataclass(frozen=True)
class Candidate:
    """One file found. ``path`` is absolute (lone surrogates stand for bytes of a non-UTF-8 name);
    ``split_defaulted``: nothing said its split, so it is ``train``."""

    path: str
    split: str
    class_name: str | None = None
    label: int | None = None
    reason: str | None = None
    split_defaulted: bool = False
    rel: str | None = None


@dataclass(frozen=True)
class Layout:
    """How to read the inputs: ``split`` overrides folder names; ``val_labels`` labels flat folders;
    ``follow_symlinks``: walk into and take files through symlinks that lead outside the SRC."""

    split: str | None = None
    val_labels: dict[str, str] | None = None
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = False
    include_background: bool = False  # Caltech-101's BACKGROUND_Google class (images.caltech)


def discover(srcs: tuple[str, ...], layout: Layout) -> Iterator[Candidate]:
    """Every candidate under ``srcs``, as a stream, each file once (first SRC wins), in a fixed order:
    each SRC in turn, folders walked in name order, lists in their row order."""
    from imgnet_tools.manifest.hashset import HashSet64

    roots = [Path(os.path.abspath(src)) for src in srcs]
    for root in roots:
        _check_src(root)
    seen = HashSet64() if len(roots) > 1 else None
    for n, root in enumerate(roots):
        earlier = [str(r) + os.sep for r in roots[:n] if r.is_dir()]
        base = str(root if root.is_dir() else root.parent) + os.sep
        batch: list[Candidate] = []
        for found in _discover_one(root, layout):
            rel = found.path[len(base):] if found.path.startswith(base) else os.path.basename(found.path)
            cand = dataclasses.replace(found, rel=rel)
            if earlier and any(cand.path.startswith(e) for e in earlier):
                continue  # inside an earlier SRC: found there already
            if seen is None:
                yield cand
                continue
            batch.append(cand)
            if len(batch) >= 4096:
                yield from _unseen(batch, seen)
                batch = []
        if seen is not None:
            yield from _unseen(batch, seen)


def _unseen(batch: list[Candidate], seen: "HashSet64") -> Iterator[Candidate]:
    """The candidates of ``batch`` whose path no earlier SRC gave (list files may repeat folders)."""
    from imgnet_tools.manifest.hashset import hash64

    hashes = hash64(c.path for c in batch)
    known = seen.contains_hashes(hashes)
    first: set[int] = set()
    for cand, value, dup in zip(batch, hashes.tolist(), known):
        if not dup and value not in first:
            first.add(value)
            yield cand
    seen.add_hashes(hashes)


def _check_src(src: Path) -> None:
    if not src.exists():
        raise InputError(f"{src} does not exist; pass image folders or list files (.csv, .tsv, .parquet).")
    if src.is_file() and src.suffix.lower() not in LIST_SUFFIXES:
        raise InputError(f"{src} is a file but not a list (.csv, .tsv, .parquet); pass its folder instead.")


def _discover_one(src: Path, layout: Layout) -> Iterator[Candidate]:
    if src.is_file():
        yield from read_list(src, layout.split)
        return
    from imgnet_tools.images import caltech

    if (root := caltech.categories_root(src)) is not None:
        yield from caltech.candidates(root, layout.split, layout.include_background, layout.exclude)
        return
    split_dirs = [src / s for s in SPLITS if (src / s).is_dir()]
    if split_dirs and layout.split is None:
        for d in split_dirs:
            yield from _split_folder(d, d.name, layout)
        return
    split = layout.split or (src.name if src.name in SPLITS else None)
    yield from _split_folder(src, split or DEFAULT_SPLIT, layout, defaulted=split is None)


def _split_folder(folder: Path, split: str, layout: Layout, defaulted: bool = False) -> Iterator[Candidate]:
    """Class sub-folders (recursively) and flat files (labelled from ``val_labels`` if given)."""
    root = os.path.realpath(folder)
    ancestry = {_dir_id(folder)}
    for entry in _entries(folder):
        if entry.path in layout.exclude:
            continue
        outside = _leads_outside(entry, root, layout)
        if outside:
            yield Candidate(entry.path, split, class_name=entry.name if _is_dir(entry) else None,
                            reason="symlink_outside", split_defaulted=defaulted)
        elif _is_dir(entry):
            for path, reason in _walk(entry.path, ancestry, layout, root):
                yield Candidate(path, split, class_name=entry.name, reason=reason, split_defaulted=defaulted)
        else:
            labels = layout.val_labels
            cls = None if labels is None else val_class(labels, os.path.splitext(entry.name)[0])
            yield Candidate(entry.path, split, class_name=cls, split_defaulted=defaulted)


def _leads_outside(entry: os.DirEntry[str], root: str, layout: Layout) -> bool:
    """A symlink whose target is outside the SRC folder (not followed unless asked)."""
    if layout.follow_symlinks:
        return False
    try:
        if not entry.is_symlink():
            return False
        target = os.path.realpath(entry.path)
    except (OSError, ValueError):
        return False
    return target != root and not target.startswith(root + os.sep)


def _walk(folder: str, ancestry: set[tuple[int, int]], layout: Layout, root: str) -> Iterator[tuple[str, str | None]]:
    """Files under ``folder`` as (path, reason); a directory loop yields one ``symlink_loop`` row."""
    try:
        ident = _dir_id(Path(folder))
    except OSError:
        yield folder, "unreadable"
        return
    if ident in ancestry:
        yield folder, "symlink_loop"
        return
    inner = ancestry | {ident}
    try:
        entries = _entries(Path(folder))
    except OSError:
        yield folder, "unreadable"
        return
    for entry in entries:
        if entry.path in layout.exclude:
            continue
        if _leads_outside(entry, root, layout):
            yield entry.path, "symlink_outside"
        elif _is_dir(entry):
            yield from _walk(entry.path, inner, layout, root)
        else:
            yield entry.path, None


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """Directory entries sorted by name, leaving out imgnet's own ``.tmp-`` files and work folders."""
    with os.scandir(folder) as it:
        return sorted((e for e in it if not _ours(e.name)), key=lambda e: e.name)


def _ours(name: str) -> bool:
    """imgnet's temporary files (``.tmp-*``) and stage work folders (``.NAME.STAGE-work``)."""
    return name.startswith(".tmp-") or (name.startswith(".") and name.endswith("-work"))


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks; a looping link reads as "not a dir" and becomes a row
    except OSError:
        return False


def _dir_id(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def class_names(srcs: tuple[str, ...], layout: Layout) -> set[str]:
    """Class names the inputs use, without walking every file: class sub-folders of each split
    folder, the validation labels' classes, and a list's ``wnid`` column (read in chunks)."""
    from imgnet_tools.images import caltech

    names: set[str] = set()
    for src in (Path(os.path.abspath(s)) for s in srcs):
        if src.is_file():
            names.update(c.class_name for c in read_list(src, layout.split) if c.class_name)
            continue
        if (root := caltech.categories_root(src)) is not None:
            names.update(caltech.category_names(root, layout.include_background))
            continue
        split_dirs = [src / s for s in SPLITS if (src / s).is_dir()] if layout.split is None else []
        for folder in split_dirs or [src]:
            names.update(e.name for e in _entries(folder) if _is_dir(e) and e.path not in layout.exclude)
    if layout.val_labels:
        names.update(v for k, v in layout.val_labels.items())
    return names


def read_list(path: Path, split: str | None) -> Iterator[Candidate]:
    """Rows of a CSV/TSV/Parquet list, streamed: ``path`` plus ``label`` or ``wnid``, optional
    ``split`` (``train`` when neither the row nor ``--split`` says)."""
    base = path.parent
    for lineno, row in enumerate(_list_rows(path), start=2):
        file = (row.get("path") or "").strip()
        if not file:
            raise InputError(f"{path}: row {lineno} has no path; lists need a 'path' column.")
        row_split = (row.get("split") or "").strip() or split
        full = os.path.abspath(os.path.join(base, file))
        yield Candidate(full, row_split or DEFAULT_SPLIT, class_name=_opt(row.get("wnid")),
                        label=_label(path, lineno, row), split_defaulted=not row_split)


def _list_rows(path: Path) -> Iterator[dict[str, str | None]]:
    if path.suffix.lower() == ".parquet":
        yield from _parquet_rows(path)
        return
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise InputError(f"{path}: the header must name a 'path' column (and 'label' or 'wnid').")
            yield from reader
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read list {path}: {exc}") from exc


def _parquet_rows(path: Path) -> Iterator[dict[str, str | None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
        if "path" not in reader.schema_arrow.names:
            raise InputError(f"{path}: a list needs a 'path' column (and 'label' or 'wnid').")
        wanted = [c for c in ("path", "label", "wnid", "split") if c in reader.schema_arrow.names]
        for batch in reader.iter_batches(batch_size=65536, columns=wanted):
            columns = [[None if v is None else str(v) for v in batch.column(c).to_pylist()] for c in wanted]
            for values in zip(*columns):
                yield dict(zip(wanted, values))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"cannot read list {path}: {exc}") from exc


def _opt(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _label(path: Path, lineno: int, row: dict[str, str | None]) -> int | None:
    raw = _opt(row.get("label"))
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"{path}: row {lineno}: label {raw!r} is not a class index; use a 'wnid' column for names.") from None


# --- ILSVRC validation ground truth -------------------------------------------------------------

_NUMBER_RE = re.compile(r"(\d+)$")


def read_val_labels(path: str | Path, id_map: str | Path | None = None) -> dict[str, str]:
    """Map validation file stems to class names from a ground-truth file.

    Accepted: a CSV/TSV whose first column is the file (stem or name) and whose second column starts
    with the wnid (``LOC_val_solution.csv``: ``ILSVRC2012_val_00000001,n01751748 x y x y ...``); or one
    value per line for image 1, 2, ...: a wnid, or the devkit's 1-based ``ILSVRC2012_ID``, which needs
    ``id_map``: the devkit's ``meta.mat`` itself (read with scipy), one wnid per line for ID 1, 2, ...,
    or ``ID wnid`` lines.
    """
    path = Path(path)
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read validation labels {path}: {exc}") from exc
    if not lines:
        raise InputError(f"validation labels {path} are empty.")
    if "," in lines[0] or "\t" in lines[0]:
        return _val_pairs(path, lines)
    ids = _devkit_ids(lines, id_map, path)
    return {f"ILSVRC2012_val_{i:08d}": cls for i, cls in enumerate(ids, start=1)} | _by_number(ids)


def _by_number(classes: list[str]) -> dict[str, str]:
    """Also look flat files up by their trailing number, so ILSVRC2010/2011-style names work too."""
    return {f"#{i}": c for i, c in enumerate(classes, start=1)}


def val_class(labels: dict[str, str], stem: str) -> str | None:
    """Class of a flat file: by exact stem, else by its trailing image number."""
    if stem in labels:
        return labels[stem]
    match = _NUMBER_RE.search(stem)
    return labels.get(f"#{int(match.group(1))}") if match else None


def _val_pairs(path: Path, lines: list[str]) -> dict[str, str]:
    delimiter = "\t" if "\t" in lines[0] else ","
    out: dict[str, str] = {}
    for lineno, line in enumerate(lines, start=1):
        cells = line.split(delimiter)
        tokens = cells[1].split() if len(cells) > 1 else []
        if not tokens:
            raise InputError(f"{path}:{lineno}: expected 'file{delimiter}wnid', got {line[:60]!r}")
        if lineno == 1 and tokens[0].lower() in ("wnid", "predictionstring", "label", "class"):
            continue  # header
        out[os.path.splitext(cells[0].strip())[0]] = tokens[0]
    return out


def _devkit_ids(lines: list[str], id_map: str | Path | None, path: Path) -> list[str]:
    if not lines[0].isdigit():
        return [ln.split()[0] for ln in lines]  # already one class name per line
    if id_map is None:
        raise InputError(
            f"{path} holds ILSVRC2012_IDs (devkit order, not sorted wnids); pass --val-id-map with the devkit's "
            "data/meta.mat, or a text file with one wnid per line for ID 1, 2, ..."
        )
    table = _read_id_map(Path(id_map))
    try:
        return [table[int(ln)] for ln in lines]
    except (KeyError, ValueError) as exc:
        raise InputError(f"{path}: ILSVRC2012_ID {exc} is not in {id_map}.") from None


def _read_id_map(path: Path) -> dict[int, str]:
    if path.suffix.lower() == ".mat":
        return _read_meta_mat(path)
    try:
        rows = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read --val-id-map {path}: {exc}") from exc
    if rows and len(rows[0]) >= 2 and rows[0][0].isdigit():
        return {int(r[0]): r[1] for r in rows}
    return {i: r[0] for i, r in enumerate(rows, start=1)}


def _read_meta_mat(path: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> wnid from the devkit's ``data/meta.mat`` (its ``synsets`` struct array)."""
    try:
        import scipy.io
    except ImportError as exc:
        raise DependencyError(
            "reading the devkit's meta.mat needs scipy (pip install scipy); or pass --val-id-map as a text "
            "file with one wnid per line in ILSVRC2012_ID order."
        ) from exc
    try:
        synsets = scipy.io.loadmat(str(path), squeeze_me=True)["synsets"]
        return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets.ravel()}
    except Exception as exc:
        raise InputError(f"{path} is not the ILSVRC devkit's meta.mat (a 'synsets' struct with ILSVRC2012_ID, WNID): {exc}") from exc
