"""The files ``imgnet synsets build`` writes, each with its reader (writers and readers in pairs).

=====================  ==================  =====================================================
file                   schema              content
=====================  ==================  =====================================================
``synsets.parquet``    ``synsets``         one row per kept synset (columns in the schema)
``words.txt``          ``words_txt``       ImageNet format: ``wnid<TAB>lemma, lemma, ...``
``wordnet.is_a.txt``   ``is_a_txt``        ImageNet format: ``parent<SPACE>child``, is-a only
``gloss.txt``          ``gloss_txt``       ``wnid<TAB>definition`` (WordNet gloss minus examples)
``classes.tsv``        ``classes_tsv``     class lists only: ``index<TAB>wnid<TAB>names``
``tree.json``          ``synsets_tree``    nested ``{wnid, name, children}`` by primary parent
``build.json``         ``synsets_build``   the build record, written last: params, WordNet, counts
=====================  ==================  =====================================================

Text files are sorted by wnid (is-a pairs by parent, then child) and carry their
``format_version`` in ``build.json``. Text is built in memory and written with one join.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgnet_tools.errors import SchemaError
from imgnet_tools.manifest.atomic import atomic_write_text
from imgnet_tools.manifest.schemas import check_version, format_version, validate_json
from imgnet_tools.synsets.graph import Graph

FILES = {
    "synsets.parquet": "synsets",
    "words.txt": "words_txt",
    "wordnet.is_a.txt": "is_a_txt",
    "gloss.txt": "gloss_txt",
    "classes.tsv": "classes_tsv",
    "tree.json": "synsets_tree",
    "build.json": "synsets_build",
}


@dataclass
class SynsetTable:
    """The kept synsets as columns (sorted by wnid) plus their graph facts and class marks."""

    wnids: list[str]
    offsets: list[int]
    lemmas: list[list[str]]
    gloss: list[str]
    examples: list[list[str]]
    lexname: list[str]
    parents: list[list[str]]
    instance_parents: list[list[str]]
    graph: Graph
    class_index: list[int | None]
    class_name: list[str | None]
    class_name_duplicate: list[bool | None]

    def __len__(self) -> int:
        return len(self.wnids)

    def display_name(self, i: int) -> str:
        """Class name for a class, else the first lemma."""
        return self.class_name[i] or self.lemmas[i][0]


# ---------------------------------------------------------------------------------------------
# synsets.parquet


def parquet_columns(t: SynsetTable) -> dict[str, list[Any]]:
    """Column name -> values, in the ``synsets`` schema's terms."""
    g, w = t.graph, t.wnids
    return {
        "wnid": w, "offset": t.offsets, "name": [ls[0] for ls in t.lemmas], "lemmas": t.lemmas,
        "gloss": t.gloss, "examples": t.examples, "lexname": t.lexname,
        "parents": t.parents, "instance_parents": t.instance_parents,
        "primary_parent": [w[p] if p >= 0 else None for p in g.primary],
        "depth_min": g.depth_min, "depth_max": g.depth_max, "num_paths": g.num_paths,
        "num_children": [len(c) for c in g.children], "num_descendants": g.num_descendants,
        "is_leaf": [not c for c in g.children],
        "is_class": [ci is not None for ci in t.class_index], "class_index": t.class_index,
        "class_name": t.class_name, "class_name_duplicate": t.class_name_duplicate,
    }


def write_parquet(t: SynsetTable, path: Path) -> int:
    """Write ``synsets.parquet`` (pyarrow from column lists); return the row count."""
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import arrow_schema, write_table

    cols = parquet_columns(t)
    schema = arrow_schema("synsets", cols)
    table = pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)
    write_table(table, path, "synsets")
    return len(t)


def read_synsets(path: str | Path, columns: list[str] | None = None) -> Any:
    """Read ``synsets.parquet`` (a pyarrow Table), checking its schema name and version."""
    from imgnet_tools.manifest.parquet import read_table

    return read_table(path, "synsets", columns=columns)


# ---------------------------------------------------------------------------------------------
# ImageNet-format text files


def words_text(t: SynsetTable) -> str:
    """``words.txt``: ``wnid<TAB>lemma, lemma`` per synset (lemmas with spaces, WordNet order)."""
    return "".join([f"{w}\t{', '.join(ls)}\n" for w, ls in zip(t.wnids, t.lemmas)])


def is_a_pairs(t: SynsetTable) -> list[tuple[str, str]]:
    """(parent, child) is-a pairs among the kept synsets, sorted (instance links left out)."""
    return sorted((p, w) for w, ps in zip(t.wnids, t.parents) for p in ps)


def is_a_text(pairs: list[tuple[str, str]]) -> str:
    """``wordnet.is_a.txt``: ``parent<SPACE>child`` per pair."""
    return "".join([f"{p} {c}\n" for p, c in pairs])


def gloss_text(t: SynsetTable) -> str:
    """``gloss.txt``: ``wnid<TAB>definition`` per synset."""
    return "".join([f"{w}\t{g}\n" for w, g in zip(t.wnids, t.gloss)])


def classes_text(t: SynsetTable) -> str:
    """``classes.tsv``: ``index<TAB>wnid<TAB>names`` per class, in class-index order."""
    rows = sorted((ci, t.wnids[i], t.class_name[i]) for i, ci in enumerate(t.class_index) if ci is not None)
    return "".join([f"{ci}\t{w}\t{name}\n" for ci, w, name in rows])


def _split_lines(path: str | Path, sep: str, fields: int) -> list[list[str]]:
    rows = []
    with open(path, encoding="utf-8", newline="\n") as fh:
        for number, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split(sep, fields - 1)
            if len(parts) != fields:
                raise SchemaError(f"{path}:{number}: expected {fields} fields separated by {sep!r}")
            rows.append(parts)
    return rows


def read_words(path: str | Path) -> dict[str, list[str]]:
    """Read ``words.txt``: wnid -> lemmas."""
    return {w: names.split(", ") for w, names in _split_lines(path, "\t", 2)}


def read_is_a(path: str | Path) -> list[tuple[str, str]]:
    """Read ``wordnet.is_a.txt``: (parent, child) pairs in file order."""
    return [(p, c) for p, c in _split_lines(path, " ", 2)]


def read_gloss(path: str | Path) -> dict[str, str]:
    """Read ``gloss.txt``: wnid -> definition."""
    return {w: g for w, g in _split_lines(path, "\t", 2)}


def read_classes(path: str | Path) -> list[tuple[int, str, str]]:
    """Read ``classes.tsv``: (index, wnid, names) in file order; indices must be 0..n-1."""
    rows = [(int(i), w, n) for i, w, n in _split_lines(path, "\t", 3)]
    if [r[0] for r in rows] != list(range(len(rows))):
        raise SchemaError(f"{path}: class indices must run 0..{len(rows) - 1} in order")
    return rows


# ---------------------------------------------------------------------------------------------
# tree.json


def tree_doc(t: SynsetTable, scope: str) -> dict[str, Any]:
    """Nested ``{wnid, name, [class_index], [children]}`` by primary parent, plus extra parents."""
    g = t.graph
    nodes: list[dict[str, Any]] = []
    for i, w in enumerate(t.wnids):
        node: dict[str, Any] = {"wnid": w, "name": t.display_name(i)}
        if t.class_index[i] is not None:
            node["class_index"] = t.class_index[i]
        nodes.append(node)
    for i, p in enumerate(g.primary):
        if p >= 0:
            nodes[p].setdefault("children", []).append(nodes[i])
    extra = {t.wnids[i]: [t.wnids[p] for p in ps if p != g.primary[i]] for i, ps in enumerate(g.struct) if len(ps) > 1}
    return {
        "format_version": format_version("synsets_tree"),
        "scope": scope,
        "roots": [nodes[i] for i in g.roots],
        "extra_parents": extra,
    }


def write_json(doc: dict[str, Any], path: Path) -> None:
    """Write a JSON artifact atomically (compact: tree.json for all nouns is several MB)."""
    atomic_write_text(path, json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")


def read_json(path: str | Path, name: str, validate: bool = True) -> dict[str, Any]:
    """Read a JSON artifact; check its format_version, and its whole schema when ``validate``."""
    try:
        doc: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"cannot read {path}: {exc}") from exc
    if validate:
        validate_json(doc, name, str(path))
    else:
        check_version(name, doc.get("format_version"), str(path))
    return doc
