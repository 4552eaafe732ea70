"""``imgnet votes next MANIFEST --votes VOTES --out DIR``: the next round of ImageNet's dynamic consensus.

Aggregates what the votes say so far (:func:`.aggregate.build_consensus`, with the manifest's
questions added so that unvoted images count), writes the consensus and worker tables beside
the votes table, and exports a batch (:func:`.export.write_batch`) holding only the questions
still ``pending``, each asking for the votes it still needs given its synset's measured agreement
(``--first-votes`` for an image without any). Questions the consensus has decided serve as gold
for the new batch, with any ``--gold-file``. Batches are folders ``DIR/batch-001``, ``batch-002``,
...; asking again with nothing new imported finds the same questions and reuses their batch.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from imgnet_tools.errors import InputError
from imgnet_tools.votes.aggregate import (CONSENSUS_FILE, Consensus, ConsensusOptions, build_consensus, policy_of,
                                          write_consensus)
from imgnet_tools.votes.export import EXPORT_FORMATS, BatchSpec, ExportResult, check_export_options, read_batch, write_batch
from imgnet_tools.votes.gold import Gold, load_gold
from imgnet_tools.votes.questions import ManifestQuestions, read_manifest, read_questions_file
from imgnet_tools.votes.synsets import find_synsets

BATCH_PREFIX = "batch-"


@dataclass(frozen=True)
class NextParams(ConsensusOptions):
    """``imgnet votes next`` options (field names = CLI option names; the consensus ones are
    :class:`ConsensusOptions`'s); the ``votes`` recipe stage too."""

    manifest: str
    votes: str
    out: str
    synsets: str | None = None
    first_votes: int = 3
    per_task: int = 50
    gold: int = 0
    format: tuple[str, ...] = EXPORT_FORMATS
    image_url: str = "{name}"
    questions: str | None = None
    seed: int = 0


@dataclass
class NextResult:
    """The state of the consensus and the batch that asks for what is missing (None: nothing)."""

    manifest: str
    votes: str
    consensus: str
    workers: str
    answers: int
    questions: int
    decisions: dict[str, int]
    votes_wanted: int
    dropped_workers: list[str]
    synsets: list[dict[str, Any]]
    batch: ExportResult | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        return self.decisions.get("pending", 0)

    def to_dict(self) -> dict[str, Any]:
        doc = {k: v for k, v in self.__dict__.items() if k != "batch"}
        doc["batch"] = None if self.batch is None else self.batch.to_dict()
        return doc


def consensus_path(votes: str | Path) -> Path:
    """The consensus table beside the votes table."""
    return Path(votes).with_name(CONSENSUS_FILE)


def manifest_extra(mq: ManifestQuestions, questions: str | None) -> Any:
    """The manifest's own questions plus a ``--questions`` file's."""
    import pyarrow as pa

    if not questions:
        return mq.asked
    return pa.concat_tables([mq.asked, read_questions_file(questions, mq.keys())])


def current_consensus(params: Any, mq: ManifestQuestions) -> Consensus:
    """Aggregate the votes table (missing: no votes yet) with the manifest's questions."""
    from imgnet_tools.votes.table import read_votes

    return build_consensus(read_votes(params.votes), policy_of(params), load_gold(params.gold_file),
                           manifest_extra(mq, params.questions))


def _wanted(result: Consensus, showable: dict[str, str], first_votes: int, max_votes: int) -> tuple[tuple[str, str, int], ...]:
    t = result.questions
    rows = zip(*(t.column(c).to_pylist() for c in ("key", "wnid", "decision", "needed", "votes", "dropped_votes")))
    wanted = []
    for key, wnid, decision, needed, votes, dropped in rows:
        if decision != "pending" or key not in showable:
            continue
        ask = max(needed, first_votes) if votes + dropped == 0 else needed
        wanted.append((key, wnid, max(1, min(ask, max_votes - votes - dropped))))
    return tuple(wanted)


def _decided_gold(result: Consensus, user: Gold) -> Gold:
    t = result.questions
    gold = Gold(dict(user.answers))
    for key, wnid, decision in zip(*(t.column(c).to_pylist() for c in ("key", "wnid", "decision"))):
        if decision in ("yes", "no") and (key, wnid) not in gold.answers:
            gold.answers[(key, wnid)] = decision
    return gold


def _batch_folder(out: Path, fingerprint: str) -> tuple[Path, bool]:
    """An existing batch folder with this fingerprint (reused), else the next free name."""
    numbers = []
    if out.is_dir():
        for folder in sorted(out.glob(f"{BATCH_PREFIX}[0-9]*")):
            doc = read_batch(folder)
            if doc is not None and doc["fingerprint"] == fingerprint:
                return folder, True
            suffix = folder.name[len(BATCH_PREFIX):]
            if suffix.isdigit():
                numbers.append(int(suffix))
    return out / f"{BATCH_PREFIX}{max(numbers, default=0) + 1:03d}", False


def next_votes(params: NextParams, progress: Callable[[int], None] | None = None) -> NextResult:
    """One round: aggregate, write the consensus, export the questions still pending."""
    from imgnet_tools.votes.export import ExportResult

    policy = policy_of(params)
    policy.validate()
    check_export_options(params.per_task, max(params.first_votes, 1), params.gold, params.format, params.image_url)
    if params.first_votes < 1:
        raise InputError("--first-votes must be at least 1.")
    t0 = time.perf_counter()
    mq = read_manifest(params.manifest)
    result = current_consensus(params, mq)
    consensus, workers = write_consensus(result, consensus_path(params.votes))
    showable = mq.paths()
    wanted = _wanted(result, showable, params.first_votes, params.max_votes)
    asked: dict[str, int] = {}
    for _, wnid, n in wanted:
        asked[wnid] = asked.get(wnid, 0) + n
    for row in result.synsets:  # what this batch asks for (--first-votes floors images without votes)
        row["asked"] = asked.get(row["wnid"], 0)
    batch: ExportResult | None = None
    if wanted:
        synsets = str(find_synsets(params.synsets, params.manifest))
        spec = BatchSpec(params.manifest, wanted, _decided_gold(result, load_gold(params.gold_file)), showable, synsets,
                         params.per_task, params.gold, tuple(params.format), params.image_url, params.seed,
                         {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(params).items()})
        folder, reused = _batch_folder(Path(params.out), spec.fingerprint())
        if reused:
            doc = read_batch(folder) or {}
            batch = ExportResult(str(folder), folder.name, doc.get("questions", 0), doc.get("gold_questions", 0),
                                 doc.get("tasks", 0), doc.get("synsets", 0), doc.get("tasks_without_gold", 0),
                                 doc.get("tasks_by_votes", {}), doc.get("files", {}), reused=True)
        else:
            batch = write_batch(spec, folder, folder.name, overwrite=False)
    if progress is not None:
        progress(1)
    return NextResult(params.manifest, params.votes, str(consensus), str(workers),
                      int(sum(s["votes"] for s in result.synsets)), result.questions.num_rows, result.counts(),
                      sum(v for _, _, v in wanted), result.dropped_workers(), result.synsets, batch,
                      round(time.perf_counter() - t0, 3))
