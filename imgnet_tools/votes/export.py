"""``imgnet votes export MANIFEST --out DIR``: work batches for crowd platforms and our own page.

The questions are the manifest's usable rows, each asked about its own synset (plus any
``--questions`` file), minus those that are gold. Tasks are built by :mod:`.tasks` (one synset
each, ``--gold`` gold questions mixed in) and written, in a folder that replaces ``DIR`` only
when every file is written, as:

=============================  =================================================================
``mturk_votesN.csv``           MTurk batch input, tasks asking for N votes (N assignments per HIT)
``mturk_layout.html``          the HIT layout for the MTurk project
``label_studio_votesN.json``   Label Studio tasks (one per question; set the project's overlap to N)
``label_studio_config.xml``    the Label Studio labeling config
``page_tasks.json``            the batch for ``imgnet votes serve --tasks``
``gold.parquet``               the gold questions mixed in (schema ``votes_gold``)
``batch.json``                 the record, written last (schema ``votes_batch``)
=============================  =================================================================
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from imgnet_tools import __version__
from imgnet_tools.errors import InputError
from imgnet_tools.manifest.atomic import atomic_output_dir
from imgnet_tools.manifest.schemas import format_version, read_valid_json, validate_json
from imgnet_tools.votes import label_studio, mturk, page
from imgnet_tools.votes.gold import Gold, load_gold, write_gold
from imgnet_tools.votes.questions import ManifestQuestions, read_manifest, read_questions_file
from imgnet_tools.votes.synsets import find_synsets, load_words
from imgnet_tools.votes.tasks import Task, build_tasks, check_url_template, image_url

EXPORT_FORMATS = ("mturk", "label_studio", "page")
BATCH_FILE = "batch.json"


@dataclass(frozen=True)
class ExportParams:
    """``imgnet votes export`` options (field names = CLI option names)."""

    manifest: str
    out: str
    synsets: str | None = None
    per_task: int = 50
    votes: int = 3
    gold: int = 0
    gold_file: tuple[str, ...] = ()
    format: tuple[str, ...] = EXPORT_FORMATS
    image_url: str = "{name}"
    questions: str | None = None
    seed: int = 0
    overwrite: bool = False


@dataclass
class ExportResult:
    """Where the batch is and what it holds (the batch record's counts)."""

    out: str
    batch: str
    questions: int
    gold_questions: int
    tasks: int
    synsets: int
    tasks_without_gold: int
    tasks_by_votes: dict[str, int]
    files: dict[str, list[str]] = field(default_factory=dict)
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BatchSpec:
    """Everything a batch folder is made from (shared by ``export`` and ``next``)."""

    manifest: str
    wanted: tuple[tuple[str, str, int], ...]  # (key, wnid, votes)
    gold: Gold
    paths: dict[str, str]  # key -> image path, for every key that may be shown
    synsets: str
    per_task: int
    gold_per_task: int
    formats: tuple[str, ...]
    image_url: str
    seed: int
    params: dict[str, Any]

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for item in (sorted(self.wanted), sorted(self.gold.answers.items()), self.per_task, self.gold_per_task,
                     sorted(self.formats), self.image_url, self.seed, self.synsets):
            digest.update(json.dumps(item, sort_keys=True, default=str).encode() + b"\n")
        return digest.hexdigest()


def check_export_options(per_task: int, votes: int, gold: int, formats: Sequence[str], url: str) -> None:
    """Raise :class:`InputError` for options that cannot make a batch."""
    if per_task < 1 or votes < 1 or gold < 0:
        raise InputError("--per-task and --votes must be at least 1, --gold at least 0.")
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown or not formats:
        raise InputError(f"--format {', '.join(unknown) or '(none)'}: choose from {', '.join(EXPORT_FORMATS)}.")
    check_url_template(url)


def write_batch(spec: BatchSpec, folder: Path, batch: str, overwrite: bool) -> ExportResult:
    """Build the tasks and write every file of the batch into ``folder`` (atomically)."""
    wnids = {w for _, w, _ in spec.wanted}  # gold is only mixed into tasks of these synsets
    words = load_words(Path(spec.synsets), wnids) if wnids else {}
    tasks, used_gold, without = build_tasks(spec.wanted, words, spec.gold, set(spec.paths), spec.per_task,
                                            spec.gold_per_task, spec.seed, batch)
    by_votes: dict[int, list[Task]] = {}
    for t in tasks:
        by_votes.setdefault(t.votes, []).append(t)
    files: dict[str, list[str]] = {f: [] for f in spec.formats}
    files["gold"] = ["gold.parquet"]

    def url(key: str, wnid: str) -> str:
        return image_url(spec.image_url, key, spec.paths[key], wnid)

    with atomic_output_dir(folder, overwrite=overwrite) as stage:
        stage.chmod(0o755)
        slots = spec.per_task + spec.gold_per_task
        for votes, group in sorted(by_votes.items()):
            if "mturk" in spec.formats:
                mturk.write_input(stage / f"mturk_votes{votes}.csv", group, slots, url)
                files["mturk"].append(f"mturk_votes{votes}.csv")
            if "label_studio" in spec.formats:
                label_studio.write_tasks(stage / f"label_studio_votes{votes}.json", group, url)
                files["label_studio"].append(f"label_studio_votes{votes}.json")
        if "mturk" in spec.formats:
            (stage / "mturk_layout.html").write_text(mturk.layout_html(slots), encoding="utf-8")
            files["mturk"].append("mturk_layout.html")
        if "label_studio" in spec.formats:
            (stage / "label_studio_config.xml").write_text(label_studio.CONFIG, encoding="utf-8")
            files["label_studio"].append("label_studio_config.xml")
        if "page" in spec.formats:
            doc = page.page_tasks(batch, tasks)
            validate_json(doc, "votes_page_tasks", "page_tasks.json")
            (stage / "page_tasks.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            files["page"].append("page_tasks.json")
        write_gold(used_gold, stage / "gold.parquet")
        result = ExportResult(str(folder), batch, len(spec.wanted), len(used_gold), len(tasks), len({t.wnid for t in tasks}),
                              without, {str(k): len(v) for k, v in sorted(by_votes.items())}, files)
        record = _record(spec, result)
        validate_json(record, "votes_batch", BATCH_FILE)
        (stage / BATCH_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return result


def _record(spec: BatchSpec, result: ExportResult) -> dict[str, Any]:
    return {
        "format_version": format_version("votes_batch"), "created_by": f"imgnet {__version__}",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "batch": result.batch, "fingerprint": spec.fingerprint(), "manifest": str(Path(spec.manifest).resolve()),
        "params": spec.params, "questions": result.questions, "gold_questions": result.gold_questions,
        "tasks": result.tasks, "synsets": result.synsets, "tasks_without_gold": result.tasks_without_gold,
        "tasks_by_votes": result.tasks_by_votes, "files": result.files,
    }


def read_batch(folder: Path) -> dict[str, Any] | None:
    """A batch folder's valid record, or None."""
    return read_valid_json(folder / BATCH_FILE, "votes_batch")


def gold_for(mq: ManifestQuestions, files: Iterable[str]) -> Gold:
    """The gold of ``files`` whose keys are manifest rows that can be shown."""
    gold = load_gold(files)
    showable = mq.paths()
    return Gold({q: a for q, a in gold.answers.items() if q[0] in showable})


def export(params: ExportParams, progress: Callable[[int], None] | None = None) -> ExportResult:
    """Write one work batch for every question of the manifest that is not gold."""
    check_export_options(params.per_task, params.votes, params.gold, params.format, params.image_url)
    mq = read_manifest(params.manifest)
    synsets = str(find_synsets(params.synsets, params.manifest))
    asked = list(zip(mq.asked.column("key").to_pylist(), mq.asked.column("wnid").to_pylist()))
    if params.questions:
        extra = read_questions_file(params.questions, mq.keys())
        asked += list(zip(extra.column("key").to_pylist(), extra.column("wnid").to_pylist()))
    gold = gold_for(mq, params.gold_file)
    paths = mq.paths()
    wanted = tuple(dict.fromkeys((k, w, params.votes) for k, w in asked if (k, w) not in gold.answers and k in paths))
    if not wanted:
        raise InputError(f"{params.manifest} has no usable rows to ask about (status ok, fixed or fixable, with a wnid); "
                         "run imgnet verify first, or pass --questions.")
    doc = asdict(params)
    spec = BatchSpec(params.manifest, wanted, gold, paths, synsets, params.per_task, params.gold, tuple(params.format),
                     params.image_url, params.seed, {k: list(v) if isinstance(v, tuple) else v for k, v in doc.items()})
    result = write_batch(spec, Path(params.out), Path(params.out).name, params.overwrite)
    if progress is not None:
        progress(1)
    return result
