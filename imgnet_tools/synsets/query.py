"""``imgnet synsets show`` and ``imgnet synsets stats``: questions to a built table or to WordNet.

With ``from_dir`` they read the ``synsets.parquet`` a build wrote (only the needed columns: an
answer in well under a second); without it they build the full noun table in memory from WordNet
(seconds). Paths, children and depths follow the structure edges described in :mod:`.graph`.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imgnet_tools.errors import InputError
from imgnet_tools.synsets.classlists import WNID_RE

SHOW_COLUMNS = ["wnid", "name", "lemmas", "gloss", "lexname", "parents", "instance_parents", "depth_min",
                "depth_max", "num_paths", "num_descendants", "class_index", "class_name"]
STATS_COLUMNS = ["wnid", "name", "parents", "instance_parents", "depth_min", "depth_max", "num_children",
                 "is_leaf", "num_paths", "is_class"]
MAX_PATHS = 50


@dataclass(frozen=True)
class Source:
    """Where questions are answered from: a build folder, else WordNet (located as in a build)."""

    from_dir: str | None = None
    wordnet_dir: str | None = None
    allow_other_wordnet: bool = False


def load_columns(source: Source, columns: list[str]) -> dict[str, list[Any]]:
    """The wanted columns of the synset table as Python lists."""
    table = load_table(source, columns)
    return {c: table.column(c).to_pylist() for c in columns}


def load_table(source: Source, columns: list[str]) -> Any:
    """The wanted columns of the synset table (a pyarrow Table), from ``from_dir`` or from WordNet."""
    if source.from_dir:
        from imgnet_tools.synsets.formats import read_synsets

        path = Path(source.from_dir) / "synsets.parquet"
        if not path.is_file():
            raise InputError(f"{path} does not exist; build it first with `imgnet synsets build --out {source.from_dir}`.")
        return read_synsets(path, columns=columns).combine_chunks()
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import arrow_schema
    from imgnet_tools.synsets.build import full_table
    from imgnet_tools.synsets.formats import parquet_columns

    cols = parquet_columns(full_table(source.wordnet_dir, source.allow_other_wordnet))
    schema = arrow_schema("synsets", columns)
    return pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)


# ----------------------------------------------------------------------------------------------
# show


@dataclass(frozen=True)
class ShowParams:
    """``imgnet synsets show QUERY``: QUERY is a wnid or a word (spaces or underscores)."""

    query: str
    source: Source = Source()


@dataclass
class ShowResult:
    """Every noun synset matching the query, with paths to the root and children."""

    query: str
    matches: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rows_where_list_has(column: Any, value: str, lower: bool = False) -> list[int]:
    """Rows whose list column holds ``value`` (vectorised: flatten, compare, map back to rows)."""
    import pyarrow.compute as pc

    flat = pc.list_flatten(column)
    if lower:
        flat = pc.utf8_lower(flat)
    hits = pc.filter(pc.list_parent_indices(column), pc.equal(flat, value))
    return sorted(set(hits.to_pylist()))


def _matching_rows(query: str, table: Any) -> list[int]:
    import pyarrow.compute as pc

    if WNID_RE.fullmatch(query):
        return [int(i) for i in pc.indices_nonzero(pc.equal(table.column("wnid"), query)).to_pylist()]
    word = " ".join(query.replace("_", " ").split()).lower()
    if not word:
        raise InputError("give a wnid (n01440764) or a word (tench) to show.")
    return _rows_where_list_has(table.column("lemmas"), word, lower=True)


class _Walker:
    """Structure parents and children of single rows, read from the Arrow columns on demand."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.wnids: list[str] = table.column("wnid").to_pylist()
        self.row_of = {w: i for i, w in enumerate(self.wnids)}
        self._up: dict[int, list[int]] = {}

    def up(self, i: int) -> list[int]:
        if i not in self._up:
            ps = self.table.column("parents")[i].as_py() or self.table.column("instance_parents")[i].as_py()
            self._up[i] = [self.row_of[p] for p in ps if p in self.row_of]
        return self._up[i]

    def down(self, i: int) -> list[int]:
        wnid = self.wnids[i]
        is_a = _rows_where_list_has(self.table.column("parents"), wnid)
        parents = self.table.column("parents")
        instances = [c for c in _rows_where_list_has(self.table.column("instance_parents"), wnid)
                     if not parents[c].as_py()]  # instance links count only where there is no is-a parent
        return sorted(set(is_a) | set(instances))

    def paths(self, row: int, limit: int = MAX_PATHS) -> list[list[int]]:
        """Paths from the root down to ``row`` (at most ``limit``), iteratively (no recursion)."""
        done: list[list[int]] = []
        stack = [[row]]
        while stack and len(done) < limit:
            path = stack.pop()
            parents = self.up(path[-1])
            if not parents:
                done.append(path[::-1])
            stack.extend(path + [p] for p in reversed(parents))
        return done


def show(params: ShowParams) -> ShowResult:
    """Look a wnid or word up: gloss, lemmas, depths, all paths to the root (up to 50), children."""
    table = load_table(params.source, SHOW_COLUMNS)
    rows = _matching_rows(params.query.strip(), table)
    if not rows:
        raise InputError(f"no noun synset matches {params.query!r}; try another spelling or a wnid like n02084071.")
    walk = _Walker(table)
    names = table.column("name")
    result = ShowResult(params.query)
    for i in rows:
        entry = table.slice(i, 1).to_pylist()[0]
        paths = walk.paths(i)
        entry["paths"] = [[walk.wnids[j] for j in path] for path in paths]
        entry["path_names"] = [[names[j].as_py() for j in path] for path in paths]
        entry["children"] = [{"wnid": walk.wnids[c], "name": names[c].as_py()} for c in walk.down(i)]
        result.matches.append(entry)
    return result


# ----------------------------------------------------------------------------------------------
# stats

FANOUT_BINS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 9), (10, 19), (20, 49), (50, 99), (100, 10**9))


@dataclass
class StatsResult:
    """Depth and fan-out distributions of a synset table."""

    synsets: int
    is_a_pairs: int
    multi_parent: int
    multi_path: int
    leaves: int
    classes: int
    max_depth: int
    depth_min_histogram: dict[int, int]
    depth_max_histogram: dict[int, int]
    fanout_histogram: dict[int, int]
    fanout_mean: float
    fanout_median: float
    fanout_max: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fanout_bins(self) -> Iterator[tuple[str, int]]:
        """The fan-out histogram in a few bins, for people."""
        for lo, hi in FANOUT_BINS:
            n = sum(v for k, v in self.fanout_histogram.items() if lo <= k <= hi)
            label = str(lo) if lo == hi else (f"{lo}+" if hi >= 10**9 else f"{lo}-{hi}")
            yield label, n


def stats(source: Source) -> StatsResult:
    """Counts, depth histograms (min and max depth) and the fan-out (children per non-leaf) histogram."""
    cols = load_columns(source, STATS_COLUMNS)
    fanout = [n for n in cols["num_children"] if n]
    widest = max(range(len(cols["wnid"])), key=lambda i: cols["num_children"][i])
    return StatsResult(
        synsets=len(cols["wnid"]),
        is_a_pairs=sum(len(ps) for ps in cols["parents"]),
        multi_parent=sum(len(ps) > 1 for ps in cols["parents"]),
        multi_path=sum(n > 1 for n in cols["num_paths"]),
        leaves=sum(cols["is_leaf"]),
        classes=sum(cols["is_class"]),
        max_depth=max(cols["depth_max"]),
        depth_min_histogram=dict(sorted(collections.Counter(cols["depth_min"]).items())),
        depth_max_histogram=dict(sorted(collections.Counter(cols["depth_max"]).items())),
        fanout_histogram=dict(sorted(collections.Counter(fanout).items())),
        fanout_mean=round(statistics.fmean(fanout), 3) if fanout else 0.0,
        fanout_median=float(statistics.median(fanout)) if fanout else 0.0,
        fanout_max={"wnid": cols["wnid"][widest], "name": cols["name"][widest], "children": cols["num_children"][widest]},
    )
