"""The report's sections: each draws one figure and one table from the collected run data.

A section with nothing to show (no manifest yet, no bench run) still draws a small figure that
says why, and the page shows the same note: a missing part is visible, never silently dropped.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from imgnet_tools.report import votes
from imgnet_tools.report.collect import RunData
from imgnet_tools.report.figures import Series, Thumb, bar_chart, cluster_strips, empty_figure

KEPT = ("ok", "fixed", "fixable")
MAX_BARS = 200  # above this many classes, draw the distribution instead of one bar per class
HIST_BINS = 20
MAX_TABLE_ROWS = 100


def _table(rows: list[list[Any]], head: list[str]) -> str:
    def cell(v: Any) -> str:
        cls = ' class="n"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        return f"<td{cls}>{html.escape(str(v))}</td>"

    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _class_names(data: RunData) -> dict[str, str]:
    return {c["wnid"]: c["name"] for c in (data.dataset or {}).get("classes", []) if c.get("wnid") and c.get("name")}


# ----------------------------------------------------------------------------------------------
# images per class


def _per_class(data: RunData) -> tuple[list[str], list[str], dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Class labels, splits, kept counts [class][split], set-aside counts [class][status]."""
    kept: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    aside: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    splits: set[str] = set()
    for row in (data.manifest or {}).get("by_class", []):
        cls = row["wnid"] or (str(row["label"]) if row["label"] is not None else "(unlabelled)")
        splits.add(row["split"])
        if row["status"] in KEPT:
            kept[cls][row["split"]] += row["key_count"]
        else:
            aside[cls][row["status"]] += row["key_count"]
    classes = sorted(set(kept) | set(aside))
    return classes, sorted(splits, key=lambda s: (s != "train", s != "val", s)), kept, aside


def _draw_per_class(data: RunData, _: int) -> tuple[Any, str]:
    title = "Images per class (usable: ok, fixable or fixed)"
    if data.manifest is None:
        return empty_figure(title, "no manifest.parquet found"), "No manifest.parquet found: run imgnet scan first."
    classes, splits, kept, _aside = _per_class(data)
    if len(classes) > MAX_BARS:
        return _class_histogram(classes, splits, kept), ""
    names = _class_names(data)
    labels = [f"{c} {names[c]}" if c in names else c for c in classes]
    series = [Series(s, [kept[c].get(s, 0) for c in classes]) for s in splits]
    return bar_chart(title, labels, series), ""


def _class_histogram(classes: list[str], splits: list[str], kept: dict[str, dict[str, int]]) -> Any:
    """How many classes have how many usable images (one bar per count range, per split)."""
    totals = {s: [kept[c].get(s, 0) for c in classes] for s in splits}
    high = int(max(max(v) for v in totals.values())) + 1
    step = max(1, -(-high // HIST_BINS))
    bins = range(0, high, step)
    labels = [f"{lo:,}-{lo + step - 1:,} images" for lo in bins]
    series = [Series(s, [sum(lo <= n < lo + step for n in totals[s]) for lo in bins]) for s in splits]
    return bar_chart(f"Classes by usable images ({len(classes):,} classes; bars count classes)", labels, series)


def _table_per_class(data: RunData) -> str:
    classes, splits, kept, aside = _per_class(data)
    names = _class_names(data)
    statuses = sorted({s for c in aside.values() for s in c})
    rows: list[list[Any]] = [
        [c, names.get(c, "")] + [kept[c].get(s, 0) for s in splits] + [aside[c].get(s, 0) for s in statuses]
        for c in classes]
    head = ["class", "name"] + [f"{s} usable" for s in splits] + statuses
    if len(rows) <= MAX_TABLE_ROWS:
        return _table(rows, head)
    fewest = sorted(rows, key=lambda r: (sum(r[2:2 + len(splits)]), r[0]))[:MAX_TABLE_ROWS]
    return (f"<p>The {MAX_TABLE_ROWS} classes with the fewest usable images, of {len(rows):,}:</p>"
            + _table(fewest, head))


# ----------------------------------------------------------------------------------------------
# verify reasons


def _reasons(data: RunData) -> list[tuple[str, str, int]]:
    rows = [(r["status"], r["reason"], r["key_count"]) for r in (data.manifest or {}).get("by_reason", []) if r["reason"]]
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))


def _draw_reasons(data: RunData, _: int) -> tuple[Any, str]:
    title = "Verify: images that are not plain RGB JPEGs, by reason"
    if data.manifest is None:
        return empty_figure(title, "no manifest.parquet found"), "No manifest.parquet found: run imgnet scan and verify."
    rows = _reasons(data)
    if not rows:
        return empty_figure(title, "every image is ok"), ""
    statuses = sorted({s for s, _, _ in rows})
    labels = [f"{reason} ({status})" for status, reason, _ in rows]
    series = [Series(st, [n if s == st else 0 for s, _, n in rows]) for st in statuses]
    return bar_chart(title, labels, series), ""


def _table_reasons(data: RunData) -> str:
    totals: dict[str, int] = defaultdict(int)
    for r in (data.manifest or {}).get("by_reason", []):
        totals[r["status"]] += r["key_count"]
    status_rows = [[s, n] for s, n in sorted(totals.items())]
    reason_rows = [[s, r, n] for s, r, n in _reasons(data)]
    return _table(status_rows, ["status", "images"]) + _table(reason_rows, ["status", "reason", "images"])


# ----------------------------------------------------------------------------------------------
# duplicate clusters


def _clusters(data: RunData) -> list[list[dict[str, Any]]]:
    """Duplicate clusters, largest first, keeper first within each."""
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in (data.manifest or {}).get("clusters", []):
        groups[row["cluster_id"]].append(row)
    ordered = sorted(groups.values(), key=lambda g: (-len(g), min(r["key"] for r in g)))
    return [sorted(g, key=lambda r: (r["dup_of"] is not None, r["key"])) for g in ordered]


def _draw_clusters(data: RunData, max_clusters: int) -> tuple[Any, str]:
    title = "Duplicate clusters (green: kept, red: duplicate)"
    if data.manifest is None:
        return empty_figure(title, "no manifest.parquet found"), "No manifest.parquet found: run imgnet dedup."
    clusters = _clusters(data)[:max_clusters]
    if not clusters:
        return empty_figure(title, "no duplicates found (or dedup has not run)"), ""
    strips = [[Thumb(Path(r["source_path"] or r["path"]), r["split"], r["dup_of"] is None) for r in c]
              for c in clusters]
    return cluster_strips(title, strips), ""


def _table_clusters(data: RunData) -> str:
    clusters = _clusters(data)
    rows = [[i + 1, r["key"], r["split"], r["status"], r["dup_of"] or "(kept)"]
            for i, c in enumerate(clusters) for r in c]
    total = (data.manifest or {}).get("clusters_total", len(clusters))
    more = (f"<p>The {len(clusters)} largest of {total} clusters; every cluster is in dedup_label_conflicts.parquet, "
            "dedup_split_leakage.parquet and the manifest's cluster_id column.</p>" if total > len(clusters) else "")
    return more + _table(rows, ["cluster", "key", "split", "status", "duplicate of"])


# ----------------------------------------------------------------------------------------------
# shards


def _draw_shards(data: RunData, _: int) -> tuple[Any, str]:
    title = "Shard sizes (MB)"
    if data.dataset is None:
        return empty_figure(title, "no dataset.json found"), "No shard directory (dataset.json) found: run imgnet shard."
    shards = data.dataset["shards"]
    splits = sorted({s["split"] for s in shards})
    series = [Series(sp, [s["bytes"] / 1e6 if s["split"] == sp else 0 for s in shards]) for sp in splits]
    return bar_chart(title, [s["file"] for s in shards], series, unit=" MB"), ""


def _table_shards(data: RunData) -> str:
    ds = data.dataset or {}
    rows = [[s["file"], s["split"], s["samples"], s["bytes"], s["sha256"][:12]] for s in ds.get("shards", [])]
    split_rows = [[name, v["samples"], v["shards"], v["bytes"]] for name, v in sorted(ds.get("splits", {}).items())]
    return _table(split_rows, ["split", "samples", "shards", "bytes"]) + _table(
        rows, ["shard", "split", "samples", "bytes", "sha256"])


# ----------------------------------------------------------------------------------------------
# bench


def _bench_label(row: dict[str, Any]) -> str:
    loader = row.get("loader")
    return f"{row['mode']} ({loader})" if loader else f"{row['mode']} (synthetic data)"


def _draw_bench(data: RunData, _: int) -> tuple[Any, str]:
    title = "Bench throughput by mode (images/s)"
    if not data.bench:
        return empty_figure(title, "no bench report found"), "No bench report found: run imgnet bench."
    return bar_chart(title, [_bench_label(r) for r in data.bench], [Series("images/s", [r["images_per_s"] for r in data.bench])]), ""


def _table_bench(data: RunData) -> str:
    keys = [k for k in data.bench[0] if k != "images_per_s" and not isinstance(data.bench[0][k], (dict, list))]
    rows = [[round(r["images_per_s"], 1)] + [r.get(k, "") for k in keys] for r in data.bench]
    return _table(rows, ["images/s"] + keys)


def _always(_: RunData) -> bool:
    return True


def _has_votes(data: RunData) -> bool:
    return data.votes is not None


@dataclass(frozen=True)
class Section:
    """One report section: anchor id, title, figure drawer, table renderer, and whether the run
    has it at all (the votes sections appear only when a votes table is found)."""

    id: str
    title: str
    draw: Callable[[RunData, int], tuple[Any, str]]
    table: Callable[[RunData], str]
    shown: Callable[[RunData], bool] = _always


SECTIONS: tuple[Section, ...] = (
    Section("images-per-class", "Images per class", _draw_per_class, _table_per_class),
    Section("verify-reasons", "Verify reasons", _draw_reasons, _table_reasons),
    Section("duplicates", "Duplicate clusters", _draw_clusters, _table_clusters),
    Section("shard-sizes", "Shard sizes", _draw_shards, _table_shards),
    Section("bench-throughput", "Bench throughput", _draw_bench, _table_bench),
    Section("votes", "Crowd votes", votes.draw_votes, votes.table_votes, _has_votes),
    Section("votes-consensus", "Consensus and workers", votes.draw_consensus, votes.table_consensus, _has_votes),
)


def _learning_sections() -> tuple[Section, ...]:
    from imgnet_tools.report.learning import SECTIONS as LEARNING

    return tuple(Section(*s) for s in LEARNING)


SECTIONS = SECTIONS + _learning_sections()
