"""``imgnet synsets build``: WordNet 3.0 nouns -> synsets.parquet and ImageNet-format files.

Steps: check the parameters and the output folder (before any work), parse the class list if any,
read every noun synset once with a fresh nltk reader (:mod:`.wordnet`), choose the rows of the
scope (:mod:`.scopes`), compute the graph facts on them (:mod:`.graph`), and write every file
into a staging folder that replaces ``--out`` only when all are written (:mod:`.formats`).
``build.json`` is written last and records params, WordNet source and counts.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imgnet_tools import __version__
from imgnet_tools.errors import ImgnetError, InputError, OutputExistsError
from imgnet_tools.manifest.atomic import atomic_output_dir, atomic_write_text
from imgnet_tools.manifest.schemas import format_version
from imgnet_tools.synsets import classlists, formats, scopes
from imgnet_tools.synsets.graph import analyse, structure_parents, wnid_of
from imgnet_tools.synsets.wordnet import (
    NounRecords,
    WordNetSource,
    load_nouns,
    paused_gc,
)

STEPS = 3  # progress ticks: read WordNet, compute the graph, write the files


@dataclass(frozen=True)
class BuildParams:
    """Parameters of ``imgnet synsets build`` (field names = CLI option names).

    Exactly one of ``scope`` (all | physical), ``wnids`` (a class-list file) and ``preset``
    (ilsvrc2012 | imagenet21k) chooses what is built; none means ``scope="all"``.
    """

    out: str
    scope: str | None = None
    wnids: str | None = None
    preset: str | None = None
    skip_unknown: bool = False
    overwrite: bool = False
    wordnet_dir: str | None = None
    allow_other_wordnet: bool = False

    def validate(self) -> None:
        """Raise :class:`InputError` for contradictory or unknown choices."""
        chosen = [n for n, v in (("--scope", self.scope), ("--wnids", self.wnids), ("--preset", self.preset)) if v]
        if len(chosen) > 1:
            raise InputError(f"{' and '.join(chosen)} exclude each other; pass one of them.")
        if self.scope is not None and self.scope not in scopes.SCOPES:
            raise InputError(f"unknown scope {self.scope!r}; choose one of {', '.join(scopes.SCOPES)}.")
        if self.preset is not None and self.preset not in classlists.PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; choose one of {', '.join(sorted(classlists.PRESETS))}.")
        if self.wnids is not None and not Path(self.wnids).is_file():
            raise InputError(f"class list {self.wnids} does not exist; pass a file with one wnid per line.")
        if self.skip_unknown and not (self.wnids or self.preset):
            raise InputError("--skip-unknown applies to --wnids or --preset only.")

    @property
    def scope_name(self) -> str:
        """``all``, ``physical``, ``preset:NAME`` or ``wnids``."""
        if self.preset:
            return f"preset:{self.preset}"
        if self.wnids:
            return "wnids"
        return self.scope or "all"

    def record(self) -> dict[str, Any]:
        """The params as recorded in build.json (``overwrite`` is how, not what, so it is left out)."""
        doc = asdict(self)
        doc.pop("overwrite")
        return doc


@dataclass
class BuildResult:
    """Summary of a build (``to_dict`` is what ``--json`` prints and build.json records)."""

    out: str
    scope: str
    wordnet: dict[str, str]
    synsets: int
    is_a_pairs: int
    is_a_roots: int
    multi_parent: int
    leaves: int
    max_depth: int
    classes: int = 0
    classes_multi_path: int = 0
    duplicate_names: list[dict[str, Any]] = field(default_factory=list)
    skipped_unknown: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_out(params: BuildParams) -> None:
    out = Path(params.out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a directory; choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not params.overwrite:
        raise OutputExistsError(f"{out} already exists and is not empty; pass --overwrite to replace it.")


def _class_list(params: BuildParams) -> classlists.ClassList | None:
    if params.preset:
        return classlists.preset(params.preset)
    if params.wnids:
        return classlists.read_class_list(params.wnids, strict_wnids=True)
    return None


def _subset(rec: NounRecords, rows: list[int]) -> NounRecords:
    if len(rows) == len(rec.offsets):
        return rec
    return NounRecords(
        offsets=[rec.offsets[i] for i in rows], lemmas=[rec.lemmas[i] for i in rows], gloss=[rec.gloss[i] for i in rows],
        examples=[rec.examples[i] for i in rows], lexname=[rec.lexname[i] for i in rows],
        parents=[rec.parents[i] for i in rows], instance_parents=[rec.instance_parents[i] for i in rows],
    )


@dataclass
class _Classes:
    index: list[int | None]
    name: list[str | None]
    duplicate: list[bool | None]
    duplicates: list[dict[str, Any]]


def _short_name(name: str | None) -> str:
    """A class's first name ("maillot" of "maillot, tank suit"): the one people read as the label."""
    return (name or "").split(",")[0].strip()


def _mark_classes(sub: NounRecords, resolved: classlists.Resolved | None, names: dict[str, str]) -> _Classes:
    n = len(sub.offsets)
    marks = _Classes([None] * n, [None] * n, [None] * n, [])
    if resolved is None:
        return marks
    row = {wnid_of(o): i for i, o in enumerate(sub.offsets)}
    for ci, wnid in enumerate(resolved.wnids):
        i = row[wnid]
        marks.index[i], marks.name[i] = ci, names.get(wnid) or ", ".join(sub.lemmas[i])
    by_name: dict[str, list[int]] = collections.defaultdict(list)
    class_rows = [i for i, index in enumerate(marks.index) if index is not None]
    for i in class_rows:
        by_name[_short_name(marks.name[i])].append(i)
    for i in class_rows:
        marks.duplicate[i] = len(by_name[_short_name(marks.name[i])]) > 1
    marks.duplicates = [{"name": name, "wnids": [wnid_of(sub.offsets[i]) for i in rows]}
                        for name, rows in sorted(by_name.items(), key=lambda kv: str(kv[0])) if len(rows) > 1]
    return marks


def _table(sub: NounRecords, marks: _Classes) -> formats.SynsetTable:
    graph = analyse(sub.offsets, sub.parents, sub.instance_parents)
    return formats.SynsetTable(
        wnids=[wnid_of(o) for o in sub.offsets], offsets=sub.offsets, lemmas=sub.lemmas, gloss=sub.gloss,
        examples=sub.examples, lexname=sub.lexname,
        parents=[[wnid_of(p) for p in ps] for ps in sub.parents],
        instance_parents=[[wnid_of(p) for p in ps] for ps in sub.instance_parents],
        graph=graph, class_index=marks.index, class_name=marks.name, class_name_duplicate=marks.duplicate,
    )


def _summary(params: BuildParams, t: formats.SynsetTable, pairs: list[tuple[str, str]], source: WordNetSource,
             marks: _Classes, skipped: list[tuple[int, str]]) -> BuildResult:
    g = t.graph
    children = {c for _, c in pairs}
    class_rows = [i for i, ci in enumerate(t.class_index) if ci is not None]
    return BuildResult(
        out=str(Path(params.out)), scope=params.scope_name,
        wordnet={"version": source.version, "source": source.kind, "path": source.path},
        synsets=len(t), is_a_pairs=len(pairs), is_a_roots=len({p for p, _ in pairs} - children),
        multi_parent=sum(len(ps) > 1 for ps in t.parents), leaves=sum(not c for c in g.children),
        max_depth=max(g.depth_max, default=0), classes=len(class_rows),
        classes_multi_path=sum(g.num_paths[i] > 1 for i in class_rows),
        duplicate_names=marks.duplicates, skipped_unknown=[{"line": ln, "wnid": w} for ln, w in skipped],
    )


def _write(params: BuildParams, t: formats.SynsetTable, pairs: list[tuple[str, str]], result: BuildResult) -> None:
    written = ["synsets.parquet", "words.txt", "wordnet.is_a.txt", "gloss.txt", "tree.json"]
    if result.classes:
        written.insert(4, "classes.tsv")
    result.files = [*written, "build.json"]
    with atomic_output_dir(params.out, overwrite=params.overwrite) as staging:
        formats.write_parquet(t, staging / "synsets.parquet")
        atomic_write_text(staging / "words.txt", formats.words_text(t))
        atomic_write_text(staging / "wordnet.is_a.txt", formats.is_a_text(pairs))
        atomic_write_text(staging / "gloss.txt", formats.gloss_text(t))
        if result.classes:
            atomic_write_text(staging / "classes.tsv", formats.classes_text(t))
        formats.write_json(formats.tree_doc(t, params.scope_name), staging / "tree.json")
        formats.write_json(_record(params, result), staging / "build.json")


def _record(params: BuildParams, result: BuildResult) -> dict[str, Any]:
    summary = result.to_dict()
    for key in ("out", "files", "seconds", "wordnet"):
        summary.pop(key)
    return {
        "format_version": format_version("synsets_build"),
        "imgnet_version": __version__,
        "params": params.record(),
        "wordnet": result.wordnet,
        "summary": summary,
        "files": {name: {"schema": formats.FILES[name], "format_version": format_version(formats.FILES[name])}
                  for name in result.files},
    }


def build_synsets(params: BuildParams, progress: Callable[[int], None] | None = None) -> BuildResult:
    """Build the synset table and ImageNet-format files for ``params`` into ``params.out``."""
    tick = progress or (lambda n: None)
    started = time.perf_counter()
    params.validate()
    _check_out(params)
    classes = _class_list(params)
    rec, source = load_nouns(params.wordnet_dir, params.allow_other_wordnet)
    tick(1)
    with paused_gc():
        table, pairs, result = _analyse(params, classes, rec, source)
        tick(1)
        _write(params, table, pairs, result)
        tick(1)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _analyse(params: BuildParams, classes: classlists.ClassList | None, rec: NounRecords,
             source: WordNetSource) -> tuple[formats.SynsetTable, list[tuple[str, str]], BuildResult]:
    """Choose the scope's rows, compute the graph and the summary."""
    struct = structure_parents(rec.offsets, rec.parents, rec.instance_parents)
    resolved = None
    if classes is not None:
        resolved = classlists.resolve(classes, {wnid_of(o): i for i, o in enumerate(rec.offsets)}, params.skip_unknown)
        rows = scopes.class_rows(struct, resolved.rows)
    elif params.scope_name == "physical":
        rows = scopes.physical_rows(rec.offsets, rec.lexname, rec.parents, struct)
    else:
        rows = list(range(len(rec.offsets)))
    sub = _subset(rec, rows)
    # class names: ImageNet's published ones for a preset; WordNet's lemmas for a user's list (text after
    # a wnid in a user's file is a comment, not a name)
    marks = _mark_classes(sub, resolved, dict(classes.words) if classes and params.preset else {})
    table = _table(sub, marks)
    pairs = formats.is_a_pairs(table)
    result = _summary(params, table, pairs, source, marks, resolved.skipped if resolved else [])
    return table, pairs, result


def outputs_complete(params: BuildParams) -> bool:
    """True when ``params.out`` holds a finished build of the same params (a re-run would do nothing)."""
    record_path = Path(params.out) / "build.json"
    if not record_path.is_file():
        return False
    try:
        record = formats.read_json(record_path, "synsets_build")
    except ImgnetError:
        return False
    if record.get("params") != params.record():
        return False
    return all((Path(params.out) / name).is_file() for name in record.get("files", {}))


def full_table(wordnet_dir: str | None = None, allow_other_wordnet: bool = False) -> formats.SynsetTable:
    """All nouns as a :class:`~.formats.SynsetTable` in memory (no files), for show and stats."""
    rec, _ = load_nouns(wordnet_dir, allow_other_wordnet)
    with paused_gc():
        return _table(rec, _mark_classes(rec, None, {}))
