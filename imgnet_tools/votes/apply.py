"""``imgnet votes apply MANIFEST --votes VOTES``: the crowd's consensus into the manifest.

For every row that is asked about (usable before the votes; see :mod:`.questions`), by the
decision on its own question (image, own wnid):

===================  ============================================================================
``yes``              the row keeps (or gets back) the status it had before the votes; ``p_yes``
                     set; ``labels`` = every class the votes accepted for this image, sorted
``no``               ``rejected``, reason ``votes_no``
``no_consensus``     ``rejected``, reason ``no_consensus``
``pending``          left usable (``--pending keep``) or ``rejected`` with ``votes_pending``
===================  ============================================================================

A rejection keeps the row's earlier status and reason in ``pre_votes_status`` /
``pre_votes_reason``, so a later apply with more votes can undo it; ``shard`` takes only rows
whose status is ``ok`` or ``fixed``, so it takes no row the votes turned down. The manifest is
rewritten atomically (in place, or to ``--out``), then ``votes_apply.json`` beside it records
the votes table's and the manifest's sha256, which is what tells a re-run that nothing changed.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from imgnet_tools import __version__
from imgnet_tools.errors import InputError
from imgnet_tools.manifest.atomic import atomic_write_text
from imgnet_tools.manifest.schemas import format_version, read_valid_json, validate_json
from imgnet_tools.votes.aggregate import Consensus, ConsensusOptions, policy_of

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

RECORD_FILE = "votes_apply.json"
PENDING = ("keep", "reject")


@dataclass(frozen=True)
class ApplyParams(ConsensusOptions):
    """``imgnet votes apply`` options (field names = CLI option names; the consensus ones are
    :class:`ConsensusOptions`'s)."""

    manifest: str
    votes: str
    out: str | None = None
    pending: str = "keep"
    questions: str | None = None

    def target(self) -> Path:
        return Path(self.out or self.manifest)

    def record_path(self) -> Path:
        return self.target().with_name(RECORD_FILE)

    def recorded(self) -> dict[str, Any]:
        """The params as recorded (paths resolved; ``out`` is where, not what)."""
        doc = asdict(self)
        doc.pop("out")
        doc["manifest"] = str(Path(self.manifest).resolve())
        doc["votes"] = str(Path(self.votes).resolve())
        doc["gold_file"] = [str(Path(g).resolve()) for g in self.gold_file]
        return doc


@dataclass
class ApplyResult:
    """What apply did to the manifest."""

    manifest: str
    votes: str
    rows: int
    asked: int
    decisions: dict[str, int]
    rejected: dict[str, int]
    restored: int
    multi_label: int
    labels_outside_classes: int
    complete: bool
    record: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _decisions(result: Consensus) -> tuple[dict[tuple[str, str], tuple[str, float | None]], dict[str, set[str]]]:
    """(key, wnid) -> (decision, p_yes); key -> wnids decided yes."""
    t = result.questions
    by_question, accepted = {}, collections.defaultdict(set)
    for key, wnid, decision, p in zip(*(t.column(c).to_pylist() for c in ("key", "wnid", "decision", "p_yes"))):
        by_question[(key, wnid)] = (decision, p)
        if decision == "yes":
            accepted[key].add(wnid)
    return by_question, accepted


@dataclass
class _Columns:
    status: list[Any]
    reason: list[Any]
    pre_status: list[Any]
    pre_reason: list[Any]
    p_yes: list[Any]
    labels: list[Any]


def _apply_rows(manifest: "pa.Table", result: Consensus, pending: str) -> tuple[_Columns, dict[str, Any]]:
    from imgnet_tools.images.check import VOTE_REASONS
    from imgnet_tools.votes.questions import base_status, base_usable

    by_question, accepted = _decisions(result)
    get: dict[str, list[Any]] = {c: manifest.column(c).to_pylist() if c in manifest.column_names else [None] * manifest.num_rows
           for c in ("key", "wnid", "label", "status", "reason", "pre_votes_status", "pre_votes_reason")}
    classes = {w: int(lab) for w, lab in zip(get["wnid"], get["label"]) if w is not None and lab is not None}
    base = base_status(_votes_view(manifest)).to_pylist()
    asked = base_usable(_votes_view(manifest)).to_pylist()
    cols = _Columns(list(get["status"]), list(get["reason"]), [None] * manifest.num_rows,
                    [None] * manifest.num_rows, [None] * manifest.num_rows, [None] * manifest.num_rows)
    stats: dict[str, Any] = {"decisions": collections.Counter(), "rejected": collections.Counter(), "restored": 0,
                             "multi_label": 0, "outside": 0, "asked": 0}
    for i, is_asked in enumerate(asked):
        if not is_asked:
            continue
        stats["asked"] += 1
        key, wnid = get["key"][i], get["wnid"][i]
        by_votes = get["reason"][i] in VOTE_REASONS
        base_reason = get["pre_votes_reason"][i] if by_votes else get["reason"][i]
        decision, p = by_question.get((key, wnid), ("pending", None))
        stats["decisions"][decision] += 1
        cols.p_yes[i] = p
        reason = {"no": "votes_no", "no_consensus": "no_consensus"}.get(decision)
        if decision == "pending" and pending == "reject":
            reason = "votes_pending"
        if reason is not None:
            cols.status[i], cols.reason[i] = "rejected", reason
            cols.pre_status[i], cols.pre_reason[i] = base[i], base_reason
            stats["rejected"][reason] += 1
            continue
        stats["restored"] += by_votes
        cols.status[i], cols.reason[i] = base[i], base_reason
        if decision == "yes":
            wnids = accepted.get(key, set())
            stats["outside"] += len([w for w in wnids if w not in classes])
            cols.labels[i] = sorted({classes[w] for w in wnids if w in classes})
            stats["multi_label"] += len(cols.labels[i]) > 1
    return cols, stats


def _votes_view(manifest: "pa.Table") -> "pa.Table":
    """The manifest's columns that :mod:`.questions` reads (missing ones as nulls)."""
    import pyarrow as pa

    arrays = {c: manifest.column(c) if c in manifest.column_names else pa.nulls(manifest.num_rows, pa.string())
              for c in ("wnid", "status", "reason", "pre_votes_status")}
    return pa.table(arrays)


def _write(manifest: "pa.Table", cols: _Columns, out: Path) -> None:
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import arrow_schema, write_table

    schema = arrow_schema("manifest")
    replace = {"status": cols.status, "reason": cols.reason, "pre_votes_status": cols.pre_status,
               "pre_votes_reason": cols.pre_reason, "p_yes": cols.p_yes, "labels": cols.labels}
    table = manifest
    for name, values in replace.items():
        column = pa.array(values, schema.field(name).type)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    write_table(table, out, "manifest")


def apply_votes(params: ApplyParams, progress: Callable[[int], None] | None = None) -> ApplyResult:
    """Aggregate, change the manifest's rows (see module docstring), write it and the record."""
    from imgnet_tools.manifest.parquet import read_table
    from imgnet_tools.votes.adaptive import manifest_extra
    from imgnet_tools.votes.aggregate import build_consensus
    from imgnet_tools.votes.gold import load_gold
    from imgnet_tools.votes.questions import read_manifest
    from imgnet_tools.votes.table import read_votes

    if params.pending not in PENDING:
        raise InputError(f"--pending {params.pending!r}: choose keep or reject.")
    policy = policy_of(params)
    policy.validate()
    if not Path(params.votes).is_file():
        raise InputError(f"{params.votes} does not exist; import votes first (imgnet votes import FILES --votes {params.votes}).")
    mq = read_manifest(params.manifest)
    manifest = read_table(params.manifest, "manifest")
    votes_sha = _sha256(Path(params.votes))
    result = build_consensus(read_votes(params.votes), policy, load_gold(params.gold_file), manifest_extra(mq, params.questions))
    cols, stats = _apply_rows(manifest, result, params.pending)
    out = params.target()
    _write(manifest, cols, out)
    complete = stats["decisions"].get("pending", 0) == 0
    summary = ApplyResult(str(out), params.votes, manifest.num_rows, stats["asked"], dict(sorted(stats["decisions"].items())),
                          dict(sorted(stats["rejected"].items())), stats["restored"], stats["multi_label"],
                          stats["outside"], complete, str(params.record_path()))
    _write_record(params, votes_sha, _sha256(out), complete, summary)
    if progress is not None:
        progress(1)
    return summary


def _write_record(params: ApplyParams, votes_sha: str, manifest_sha: str, complete: bool, summary: ApplyResult) -> None:
    doc = {"format_version": format_version("votes_apply"), "created_by": f"imgnet {__version__}",
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "params": params.recorded(), "votes_sha256": votes_sha, "manifest_sha256": manifest_sha,
           "complete": complete, "result": summary.to_dict()}
    validate_json(doc, "votes_apply", RECORD_FILE)
    atomic_write_text(params.record_path(), json.dumps(doc, indent=2) + "\n")


def outputs_complete(params: ApplyParams, require_complete: bool = False) -> bool:
    """True when the record beside the manifest matches these params, the votes table and the
    manifest as they are now (``require_complete``: and no question was pending)."""
    path = params.record_path()
    if not path.is_file() or not params.target().is_file() or not Path(params.votes).is_file():
        return False
    doc = read_valid_json(path, "votes_apply")
    if doc is None:
        return False
    if doc["params"] != params.recorded() or (require_complete and not doc["complete"]):
        return False
    return bool(doc["votes_sha256"] == _sha256(Path(params.votes)) and doc["manifest_sha256"] == _sha256(params.target()))
