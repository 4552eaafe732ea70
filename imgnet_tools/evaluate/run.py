"""``imgnet eval``: the stage entry point (:class:`EvalParams`, :func:`evaluate`, :func:`outputs_complete`).

Steps: read the predictions (:mod:`.predictions`) and the ground truth (:mod:`.truth`), line them
up image by image, turn every guess into a class index of the truth's class list, score with
:mod:`.metrics`, and describe every mismatch in ``counts``. Nothing is dropped without a count:

* a prediction whose key is not in the manifest: a run-level error naming the first keys (the
  wrong manifest, or the wrong split's predictions); with ``skip_unknown`` it is counted as
  ``unknown_key`` instead;
* a prediction for a manifest row that is not scored (another split, unlabelled, rejected or
  duplicate): counted under ``excluded`` by reason;
* an image without a prediction: scored as wrong (``missing``);
* a guess outside the class list (a wnid not in it, an index out of range, a devkit ID outside
  1..1000): counted (``unknown_wnid``, ``out_of_range``, ``bad_devkit_id``) and never right; a
  guess repeated in one row counts once (``repeated_guess``);
* rows with fewer than five guesses: counted (``fewer_than_5``); top-5 gives them fewer chances.

The devkit format has no keys: line ``i`` is validation image ``i`` (``ILSVRC2012_val_0000000i``),
matched by the number in the truth's file names (or keys); when the truth's names carry no number,
lines follow the truth rows in file-name order and their counts must agree.
"""

from __future__ import annotations

import datetime
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from imgnet_tools import __version__
from imgnet_tools.errors import InputError, OutputExistsError
from imgnet_tools.evaluate import devkit
from imgnet_tools.evaluate.metrics import NO_GUESS, TOP_K, Scores, confused_pairs, per_class, score
from imgnet_tools.evaluate.predictions import FORMATS, Predictions, Token, read_predictions
from imgnet_tools.evaluate.truth import ClassSpace, Truth, classes_from_file, from_devkit, from_manifest
from imgnet_tools.manifest.atomic import atomic_write_text
from imgnet_tools.manifest.schemas import format_version, read_valid_json, validate_json

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

SCHEMA = "eval_report"
COUNT_NAMES = ("scored", "missing", "unknown_key", "unknown_wnid", "out_of_range", "bad_devkit_id",
               "repeated_guess", "fewer_than_5")


@dataclass(frozen=True)
class EvalParams:
    """``imgnet eval PREDICTIONS`` options (field names = CLI option names)."""

    predictions: str
    manifest: str | None = None
    truth: str | None = None
    split: str = "val"
    classes: str | None = None
    synsets: str | None = None
    real: str | None = None
    format: str = "auto"
    skip_unknown: bool = False
    confused: int = 20
    out: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if (self.manifest is None) == (self.truth is None):
            raise InputError("give the ground truth as --manifest MANIFEST or --truth devkit_ground_truth.txt (one of them).")
        if self.format not in FORMATS:
            raise InputError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}.")
        if self.confused < 0:
            raise InputError("confused must be >= 0.")


@dataclass
class EvalResult:
    """The evaluation document (schema ``eval_report``) and where it was written."""

    report: dict[str, Any]
    out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report itself (what ``--json`` prints)."""
        return self.report


@dataclass
class Aligned:
    """Predictions lined up with the truth: one guess row per truth row, and what did not fit."""

    guesses: "np.ndarray"
    counts: Counter[str] = field(default_factory=Counter)
    excluded: Counter[str] = field(default_factory=Counter)


def _rows_by_key(preds: Predictions, truth: Truth, skip_unknown: bool, aligned: Aligned) -> list[int | None]:
    """For each truth row, the prediction row that scores it (None: missing)."""
    keys = preds.keys or ()
    if truth.keys is None:
        by_number = {n: i for i, n in enumerate(truth.numbers) if n is not None}
        slots: list[int | None] = [None] * len(truth)
        unknown = []
        for p, key in enumerate(keys):
            row = by_number.get(devkit.val_number(key) or -1)
            if row is None:
                unknown.append(key)
            else:
                slots[row] = p
        _unknown(unknown, truth, skip_unknown, aligned, "has no ILSVRC2012_val number in the ground truth")
        return slots
    where = {k: i for i, k in enumerate(truth.keys)}
    slots = [None] * len(truth)
    unknown = []
    for p, key in enumerate(keys):
        row = where.get(key)
        if row is not None:
            slots[row] = p
        elif key in truth.excluded:
            aligned.excluded[truth.excluded[key]] += 1
        else:
            unknown.append(key)
    _unknown(unknown, truth, skip_unknown, aligned, "is not in the manifest")
    return slots


def _unknown(unknown: list[str], truth: Truth, skip_unknown: bool, aligned: Aligned, why: str) -> None:
    if unknown and not skip_unknown:
        raise InputError(f"{len(unknown)} prediction(s) {why} {truth.source} (first: {', '.join(unknown[:5])}); "
                         "check the manifest and --split, or pass --skip-unknown to count them and go on.")
    aligned.counts["unknown_key"] += len(unknown)


def _rows_by_line(preds: Predictions, truth: Truth, skip_unknown: bool, aligned: Aligned) -> list[int | None]:
    """Devkit lines: line i is validation image i+1 (by number, else by file-name order)."""
    if all(n is not None for n in truth.numbers):
        by_number = {n: i for i, n in enumerate(truth.numbers)}
        slots: list[int | None] = [None] * len(truth)
        outside = []
        for line in range(len(preds)):
            row = by_number.get(line + 1)
            if row is None:
                outside.append(f"line {line + 1}")
            else:
                slots[row] = line
        _unknown(outside, truth, skip_unknown, aligned, "name a validation image that is not scored in")
        return slots
    if len(preds) != len(truth):
        raise InputError(f"{preds.path} has {len(preds)} lines but {truth.source} scores {len(truth)} images, whose "
                         "names carry no ILSVRC2012_val number; the devkit format needs one line per image in "
                         "file-name order.")
    order = sorted(range(len(truth)), key=lambda i: truth.file_names[i])
    slots = [None] * len(truth)
    for line, row in enumerate(order):
        slots[row] = line
    return slots


def _to_index(token: Token, kind: str, classes: ClassSpace, index: dict[str, int], ids: dict[int, str],
              counts: Counter[str]) -> int:
    if kind == "index":
        if 0 <= int(token) < len(classes):
            return int(token)
        counts["out_of_range"] += 1
        return NO_GUESS
    if kind == "devkit_id":
        if int(token) not in ids:
            counts["bad_devkit_id"] += 1
            return NO_GUESS
        token = ids[int(token)]
    found = index.get(str(token))
    if found is None:
        counts["unknown_wnid"] += 1
        return NO_GUESS
    return found


def align(preds: Predictions, truth: Truth, skip_unknown: bool = False) -> Aligned:
    """One row of ``TOP_K`` class-index guesses per truth row (``NO_GUESS`` where there is none)."""
    import numpy as np

    aligned = Aligned(np.full((len(truth), TOP_K), NO_GUESS, dtype=np.int64))
    if preds.keys is None:
        slots = _rows_by_line(preds, truth, skip_unknown, aligned)
    else:
        slots = _rows_by_key(preds, truth, skip_unknown, aligned)
    index, ids = truth.classes.index_of(), devkit.id_to_wnid()
    if preds.kind == "wnid" and not index:
        raise InputError(f"{preds.path} names classes by wnid but the class list of {truth.source} has no wnids; "
                         "pass --classes.")
    for row, p in enumerate(slots):
        if p is None:
            aligned.counts["missing"] += 1
            continue
        guesses = preds.guesses[p]
        aligned.counts["scored"] += 1
        if len(guesses) < TOP_K:
            aligned.counts["fewer_than_5"] += 1
        seen: set[int] = set()
        for slot, token in enumerate(guesses):
            value = _to_index(token, preds.kind, truth.classes, index, ids, aligned.counts)
            if value != NO_GUESS and value in seen:
                aligned.counts["repeated_guess"] += 1
                continue
            seen.add(value)
            aligned.guesses[row, slot] = value
    return aligned


def read_real(path: str | Path, truth: Truth) -> list[list[int]]:
    """ReaL labels per truth row, as class indices of the truth's class list.

    The file is a JSON list (50,000 for ILSVRC-2012 val) of lists of class indices in ILSVRC-2012's
    sorted-wnid order, in file-name order; rows are matched by their validation number, else by
    file-name order (then the lengths must agree). Indices map to our classes through their wnids
    when every class has one, and are taken as our indices otherwise.
    """
    from imgnet_tools.evaluate.truth import ilsvrc_classes

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read ReaL labels {path}: {exc}") from exc
    if not isinstance(doc, list) or not all(isinstance(r, list) and all(isinstance(x, int) for x in r) for r in doc):
        raise InputError(f"{path}: ReaL labels are a JSON list of lists of class indices (real.json).")
    if all(n is not None for n in truth.numbers):
        too_far = [n for n in truth.numbers if n is not None and n > len(doc)]
        if too_far:
            raise InputError(f"{path} has {len(doc)} entries but the ground truth holds ILSVRC2012_val_{too_far[0]:08d}.")
        rows = [doc[n - 1] for n in truth.numbers if n is not None]
    else:
        if len(doc) != len(truth):
            raise InputError(f"{path} has {len(doc)} entries but {truth.source} scores {len(truth)} images (in "
                             "file-name order); they must agree.")
        order = sorted(range(len(truth)), key=lambda i: truth.file_names[i])
        rows = [[] for _ in range(len(truth))]
        for entry, row in zip(doc, order, strict=True):
            rows[row] = entry
    if all(w is not None for w in truth.classes.wnids):
        ilsvrc, ours = ilsvrc_classes().wnids, truth.classes.index_of()
        return [[ours[ilsvrc[x]] for x in r if 0 <= x < len(ilsvrc) and ilsvrc[x] in ours] for r in rows]
    return [[x for x in r if 0 <= x < len(truth.classes)] for r in rows]


def _truth(params: EvalParams) -> Truth:
    classes = classes_from_file(params.classes) if params.classes else None
    if params.truth is not None:
        truth = from_devkit(params.truth)
        if classes is not None:
            raise InputError("--classes applies to --manifest; a devkit ground truth uses ILSVRC-2012's classes.")
        return truth
    return from_manifest(str(params.manifest), params.split, classes)


def _distance(params: EvalParams, truth: Truth) -> Any:
    if params.synsets is None:
        return None
    from imgnet_tools.evaluate.hierarchy import Hierarchy, read_parents

    missing = [i for i, w in enumerate(truth.classes.wnids) if w is None]
    if missing:
        raise InputError(f"hierarchical error needs a wnid for every class; class {missing[0]} has none.")
    wnids = [w for w in truth.classes.wnids if w is not None]
    return Hierarchy.build(read_parents(params.synsets), wnids, params.synsets)


def _sources(params: EvalParams) -> list[dict[str, Any]]:
    out = []
    for kind in ("predictions", "manifest", "truth", "classes", "synsets", "real"):
        value = getattr(params, kind)
        if value is None:
            continue
        p = Path(value)
        if p.is_dir() and (p / "synsets.parquet").is_file():
            p = p / "synsets.parquet"
        st = p.stat() if p.exists() else None
        out.append({"kind": kind, "path": str(p.resolve()), "bytes": st.st_size if st else 0,
                    "mtime_ns": st.st_mtime_ns if st else 0})
    return out


def _class_rows(rows: list[dict[str, Any]], classes: ClassSpace) -> list[dict[str, Any]]:
    return [{**r, "wnid": classes.wnids[r["index"]], "name": classes.names[r["index"]]} for r in rows]


def build_report(params: EvalParams, preds: Predictions, truth: Truth, aligned: Aligned, scores: Scores,
                 hierarchy: Any) -> dict[str, Any]:
    """The whole ``eval_report`` document, validated."""
    classes = truth.classes
    confused = [{"true": t, "true_label": classes.label(t), "guess": g, "guess_label": classes.label(g), "images": n}
                for t, g, n in confused_pairs(truth.labels, aligned.guesses, params.confused)]
    doc = {
        "format_version": format_version(SCHEMA),
        "created_by": f"imgnet {__version__}",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "params": asdict(params),
        "sources": _sources(params),
        "predictions": {"path": preds.path, "format": preds.format, "kind": preds.kind, "rows": len(preds)},
        "truth": {"source": truth.source, "split": truth.split, "images": len(truth), "classes": len(classes)},
        "metrics": scores.to_dict(),
        "counts": {**{n: int(aligned.counts.get(n, 0)) for n in COUNT_NAMES},
                   "excluded": dict(sorted(aligned.excluded.items()))},
        "hierarchy": None if hierarchy is None else {"source": params.synsets, "max_cost": hierarchy.max_cost},
        "per_class": _class_rows(per_class(truth.labels, aligned.guesses, len(classes)), classes),
        "confused": confused,
    }
    validate_json(doc, SCHEMA, "eval report")
    return doc


def evaluate(params: EvalParams, progress: Callable[[int], None] | None = None) -> EvalResult:
    """Score ``params.predictions`` against the ground truth; write ``params.out`` (JSON) when set."""
    if params.out and Path(params.out).exists() and not params.overwrite:
        raise OutputExistsError(f"{params.out} already exists; pass --overwrite to replace it.")
    preds = read_predictions(params.predictions, params.format)
    truth = _truth(params)
    aligned = align(preds, truth, params.skip_unknown)
    if not aligned.counts["scored"]:
        excluded = ", ".join(f"{k} {v}" for k, v in sorted(aligned.excluded.items()))
        why = f" (rows of the manifest that are not scored: {excluded})" if excluded else ""
        raise InputError(f"no prediction in {params.predictions} matches an image scored in {truth.source}{why}; "
                         "check --split and that both files describe the same images.")
    hierarchy = _distance(params, truth)
    real = read_real(params.real, truth) if params.real else None
    scores = score(truth.labels, aligned.guesses, hierarchy, real)
    doc = build_report(params, preds, truth, aligned, scores, hierarchy)
    if progress is not None:
        progress(1)
    if params.out:
        atomic_write_text(params.out, json.dumps(doc, indent=2) + "\n")
    return EvalResult(doc, params.out)


def outputs_complete(params: EvalParams) -> bool:
    """True when ``params.out`` is a valid report of these parameters over unchanged inputs."""
    if not params.out or not os.path.isfile(params.out):
        return False
    doc = read_valid_json(params.out, SCHEMA)
    if doc is None:
        return False
    asked = {k: v for k, v in asdict(params).items() if k != "overwrite"}
    same = all(doc["params"].get(k) == v for k, v in asked.items())
    return same and doc["sources"] == _sources(params)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:6.2f}%"


def format_table(doc: dict[str, Any], classes_shown: int = 10) -> str:
    """The people-facing summary: the headline numbers, the counts, the worst classes, the confusions."""
    m, c = doc["metrics"], doc["counts"]
    lines = [f"{doc['predictions']['path']} ({doc['predictions']['format']}, {doc['predictions']['rows']:,} rows) "
             f"against {doc['truth']['source']} ({doc['truth']['images']:,} images, {doc['truth']['classes']:,} classes)",
             f"{'measure':<28}{'accuracy':>10}{'error':>10}",
             f"{'top-1':<28}{_pct(m['top1_accuracy']):>10}{_pct(m['top1_error']):>10}",
             f"{'top-5':<28}{_pct(m['top5_accuracy']):>10}{_pct(m['top5_error']):>10}"]
    if m["hierarchical_error"] is not None:
        lines.append(f"{'hierarchical (top-5, top-1)':<28}{'':>10}{m['hierarchical_error']:>10.3f}  "
                     f"{m['hierarchical_error_top1']:.3f} (mean LCA height; max {doc['hierarchy']['max_cost']})")
    if m["real_top1_accuracy"] is not None:
        lines.append(f"{'ReaL top-1':<28}{_pct(m['real_top1_accuracy']):>10}{'':>10}  ({m['real_images']:,} images with labels)")
    counted = ", ".join(f"{k} {v:,}" for k, v in c.items() if k != "excluded" and v)
    lines.append(f"counts: {counted}")
    if c["excluded"]:
        lines.append("not scored (in the manifest, excluded): " + ", ".join(f"{k} {v:,}" for k, v in c["excluded"].items()))
    if c["fewer_than_5"]:
        lines.append(f"note: {c['fewer_than_5']:,} rows have fewer than 5 guesses; top-5 gives them fewer chances.")
    worst = sorted((r for r in doc["per_class"] if r["top1"] < 1.0), key=lambda r: (r["top1"], r["index"]))[:classes_shown]
    if worst:
        lines.append("lowest top-1 classes: " + "; ".join(
            f"{r['wnid'] or '#' + str(r['index'])} {100 * r['top1']:.0f}% of {r['images']}" for r in worst))
    for pair in doc["confused"][:classes_shown]:
        lines.append(f"  confused: {pair['true_label']} -> {pair['guess_label']}: {pair['images']}")
    return "\n".join(lines)
