"""``imgnet votes``: human verification: export work, import answers, aggregate, next round, apply, serve."""

from __future__ import annotations

from typing import Any, Callable

import click

from imgnet_tools.cli.options import emit_json, json_option, note, overwrite_option

# Choices and defaults are spelled here rather than imported from imgnet_tools.votes, so that
# --help imports nothing of the library; tests/votes/test_votes_cli.py holds them equal to the
# library's (and tests/cli/test_cli.py the stage's defaults to NextParams).
METHODS = ("dawid-skene", "majority", "glad")
ENGINES = ("auto", "numpy", "crowd-kit")
EXPORT_FORMATS = ("mturk", "label_studio", "page")
IMPORT_FORMATS = ("auto", "mturk", "label_studio", "page", "table")

file_in = click.Path(exists=True, dir_okay=False)


def consensus_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command that aggregates shares (defined once)."""
    options = [
        click.option("--method", type=click.Choice(METHODS), default="dawid-skene", show_default=True,
                     help="Aggregation: Dawid-Skene (a confusion matrix per worker), majority vote, or GLAD "
                          "(worker skill and image difficulty)."),
        click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
                     help="Dawid-Skene implementation: auto/numpy (vectorised, same results, ~15x faster on 1M votes) "
                          "or crowd-kit's. Majority and GLAD always run on crowd-kit."),
        click.option("--confidence", type=click.FloatRange(0.5, 1.0, min_open=True, max_open=True), default=0.95,
                     show_default=True, help="A question is decided when P(yes) reaches this, or P(no) does."),
        click.option("--max-votes", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Give up on an image (no_consensus) that cannot reach --confidence within this many votes."),
        click.option("--gold-file", "gold_file", type=file_in, multiple=True,
                     help="Known answers (CSV/Parquet key, wnid, answer, or a consensus table); repeatable."),
        click.option("--spam-threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.9, show_default=True,
                     help="Drop workers whose spam score (1 - |sensitivity + specificity - 1|) is at least this."),
        click.option("--min-worker-votes", type=click.IntRange(min=1), default=20, show_default=True,
                     help="Judge (and maybe drop) a worker only after this many answers on decided images."),
        click.option("--min-gold-accuracy", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
                     help="Drop workers below this accuracy on gold (after 5 gold answers)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def batch_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape a work batch (export and next)."""
    options = [
        click.option("--synsets", type=click.Path(exists=True), default=None,
                     help="synsets.parquet (or its folder) for words and glosses; default: found near MANIFEST."),
        click.option("--per-task", type=click.IntRange(min=1), default=50, show_default=True,
                     help="Images per task (one MTurk HIT, all of one synset)."),
        click.option("--gold", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Gold questions mixed into each task (from --gold-file, or earlier consensus for next)."),
        click.option("--format", "format", type=click.Choice(EXPORT_FORMATS), multiple=True, default=EXPORT_FORMATS,
                     show_default=True, help="Formats to write (repeatable)."),
        click.option("--image-url", default="{name}", show_default=True,
                     help="How workers' browsers find an image: a template with {key}, {name}, {stem}, {path}, {wnid}, "
                          "e.g. https://bucket.example/imgs/{name}."),
        click.option("--questions", type=file_in, default=None,
                     help="More questions: CSV/Parquet of key, wnid (ask about other synsets too, for multi-label rows)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for task order and gold placement."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group("votes")
def votes() -> None:
    """Human verification, as ImageNet did it: workers answer "does this image show SYNSET?",
    their answers are aggregated into a consensus, and images get votes until it is confident.

    \b
    A round:
      imgnet votes export work/manifest.parquet --out batches/first --votes 3
      (post batches/first/mturk_votes3.csv on MTurk, or label with `imgnet votes serve`)
      imgnet votes import Batch_123_batch_results.csv --votes work/votes.parquet --manifest work/manifest.parquet
      imgnet votes next work/manifest.parquet --votes work/votes.parquet --out batches
      imgnet votes apply work/manifest.parquet --votes work/votes.parquet
    """


@votes.command("export")
@click.argument("manifest", type=file_in)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the batch.")
@batch_options
@click.option("--votes", type=click.IntRange(min=1), default=3, show_default=True, help="Votes to ask for per image.")
@click.option("--gold-file", "gold_file", type=file_in, multiple=True,
              help="Known answers to mix in: CSV/Parquet key, wnid, answer, or a consensus table; repeatable.")
@overwrite_option
@json_option
def export_cmd(manifest: str, out: str, synsets: str | None, per_task: int, gold: int, format: tuple[str, ...],
               image_url: str, questions: str | None, seed: int, votes: int, gold_file: tuple[str, ...],
               overwrite: bool, as_json: bool) -> None:
    """Write work batches for every usable image of MANIFEST, grouped by synset, with the
    synset's words and gloss: an MTurk batch input CSV and HIT layout, Label Studio tasks and
    labeling config, and page_tasks.json for `imgnet votes serve`.

    \b
    Example:
      imgnet votes export work/manifest.parquet --out batches/first --votes 3 --gold 4 --gold-file gold.csv \\
          --image-url 'https://images.example.org/{name}'
    """
    from imgnet_tools.votes.export import ExportParams, export

    result = export(ExportParams(manifest, out, synsets, per_task, votes, gold, gold_file, format, image_url,
                                 questions, seed, overwrite))
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"{result.out}: {result.questions} questions in {result.tasks} tasks over {result.synsets} synsets, "
               f"{result.gold_questions} gold questions mixed in")
    for fmt, names in result.files.items():
        click.echo(f"  {fmt}: {', '.join(names)}")
    if result.tasks_without_gold:
        note(f"{result.tasks_without_gold} tasks got no gold: their synsets have no gold question.")



@votes.command("import")
@click.argument("files", nargs=-1, required=True, type=file_in)
@click.option("--votes", required=True, type=click.Path(dir_okay=False), help="The votes table (created if missing).")
@click.option("--manifest", type=file_in, default=None, help="Check keys and wnids against this manifest.")
@click.option("--format", "format", type=click.Choice(IMPORT_FORMATS), default="auto", show_default=True,
              help="Format of FILES (auto: from each file's name and content).")
@json_option
def import_cmd(files: tuple[str, ...], votes: str, manifest: str | None, format: str, as_json: bool) -> None:
    """Add the answers in FILES to the votes table: MTurk batch results CSVs, Label Studio JSON
    exports, the page's answers.jsonl, or long CSV/Parquet tables (key, wnid, worker, answer).

    Rejected assignments, cancelled annotations, malformed rows, unknown keys or wnids are
    counted and reported, never fatal. Re-importing a file adds nothing.

    \b
    Example:
      imgnet votes import Batch_5012345_batch_results.csv project-3-at-2024.json \\
          --votes work/votes.parquet --manifest work/manifest.parquet
    """
    from imgnet_tools.votes.importer import ImportParams, import_votes

    result = import_votes(ImportParams(files, votes, manifest, format))
    if as_json:
        emit_json(result.to_dict())
        return
    for f in result.files:
        skipped = ", ".join(f"{k} {v}" for k, v in f.skipped.items()) or "none"
        click.echo(f"{f.file} ({f.format}): {f.answers} answers, {f.added} added, {f.duplicates} already there; "
                   f"skipped: {skipped}")
        for reason, where in f.examples.items():
            note(f"  {reason}: {', '.join(where)}")
    click.echo(f"{result.votes}: {result.total} answers ({result.added} added)")


@votes.command("aggregate")
@click.argument("votes", type=file_in)
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Consensus table (default: consensus.parquet beside VOTES).")
@click.option("--workers-out", type=click.Path(dir_okay=False), default=None,
              help="Worker table (default: beside --out, NAME_workers.parquet).")
@consensus_options
@json_option
def aggregate_cmd(votes: str, out: str | None, workers_out: str | None, method: str, engine: str, confidence: float,
                  max_votes: int, gold_file: tuple[str, ...], spam_threshold: float, min_worker_votes: int,
                  min_gold_accuracy: float, as_json: bool) -> None:
    """Aggregate VOTES: per question P(yes), the decision and the vote counts; per worker
    accuracy on gold, agreement with the consensus, a spam score and whether they were dropped.

    \b
    Example:
      imgnet votes aggregate work/votes.parquet --method dawid-skene --gold-file gold.csv
    """
    from imgnet_tools.votes.aggregate import AggregateParams, aggregate

    result = aggregate(AggregateParams(
        votes, out, workers_out, method=method, engine=engine, confidence=confidence, max_votes=max_votes,
        gold_file=gold_file, spam_threshold=spam_threshold, min_worker_votes=min_worker_votes,
        min_gold_accuracy=min_gold_accuracy))
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"{result.answers} answers, {result.questions} questions, {result.workers} workers ({result.method}, "
               f"{result.seconds:.2f}s)")
    click.echo("decisions: " + ", ".join(f"{k} {v}" for k, v in result.decisions.items()))
    click.echo(f"dropped workers: {', '.join(result.dropped_workers) or 'none'}")
    click.echo(f"consensus: {result.out}")
    click.echo(f"workers: {result.workers_out}")


def _print_synsets(rows: list[dict[str, Any]]) -> None:
    """Per synset: decisions, votes asked now, measured agreement and the one-coin accuracy it implies."""
    click.echo(f"{'wnid':<10} {'images':>6} {'yes':>5} {'no':>5} {'pending':>7} {'no_cons':>7} {'asked':>6} "
               f"{'agree':>6} {'acc':>5}")
    for r in rows:
        click.echo(f"{r['wnid']:<10} {r['questions']:>6} {r['yes']:>5} {r['no']:>5} {r['pending']:>7} "
                   f"{r['no_consensus']:>7} {r.get('asked', r['needed']):>6} {r['agreement']:>6.3f} {r['accuracy']:>5.3f}")


@votes.command("next")
@click.argument("manifest", type=file_in)
@click.option("--votes", required=True, type=click.Path(dir_okay=False), help="The votes table (may not exist yet).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for batch-NNN folders.")
@consensus_options
@click.option("--first-votes", type=click.IntRange(min=1), default=3, show_default=True,
              help="Votes to ask for an image that has none yet.")
@batch_options
@json_option
def next_cmd(manifest: str, votes: str, out: str, method: str, engine: str, confidence: float, max_votes: int,
             gold_file: tuple[str, ...], spam_threshold: float, min_worker_votes: int, min_gold_accuracy: float,
             first_votes: int, synsets: str | None, per_task: int, gold: int, format: tuple[str, ...], image_url: str,
             questions: str | None, seed: int, as_json: bool) -> None:
    """ImageNet's dynamic consensus, one round: per synset, which images still need votes to
    reach --confidence given that synset's measured worker agreement, and a batch in OUT asking
    only for those (each for the votes it still needs). Images that cannot get there within
    --max-votes are no_consensus. The consensus tables are written beside VOTES.

    \b
    Example:
      imgnet votes next work/manifest.parquet --votes work/votes.parquet --out batches --gold 3
    """
    from imgnet_tools.votes.adaptive import NextParams, next_votes

    result = next_votes(NextParams(
        manifest, votes, out, synsets, first_votes, per_task, gold, format, image_url, questions, seed,
        method=method, engine=engine, confidence=confidence, max_votes=max_votes, gold_file=gold_file,
        spam_threshold=spam_threshold, min_worker_votes=min_worker_votes, min_gold_accuracy=min_gold_accuracy))
    if as_json:
        emit_json(result.to_dict())
        return
    _print_synsets(result.synsets)
    click.echo("decisions: " + ", ".join(f"{k} {v}" for k, v in result.decisions.items()))
    if result.batch is None:
        click.echo("nothing pending: apply with imgnet votes apply")
        return
    b = result.batch
    click.echo(f"{b.out}{' (unchanged, reused)' if b.reused else ''}: {result.pending} images, "
               f"{result.votes_wanted} votes wanted, {b.tasks} tasks")


@votes.command("apply")
@click.argument("manifest", type=file_in)
@click.option("--votes", required=True, type=file_in, help="The votes table.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the manifest here (default: in place).")
@consensus_options
@click.option("--pending", type=click.Choice(("keep", "reject")), default="keep", show_default=True,
              help="Rows not decided yet: keep them usable, or reject them (votes_pending) until they are.")
@click.option("--questions", type=file_in, default=None, help="The extra questions file given to export/next.")
@json_option
def apply_cmd(manifest: str, votes: str, out: str | None, method: str, engine: str, confidence: float, max_votes: int,
              gold_file: tuple[str, ...], spam_threshold: float, min_worker_votes: int, min_gold_accuracy: float,
              pending: str, questions: str | None, as_json: bool) -> None:
    """Apply the consensus to MANIFEST: rows whose own label is voted down become rejected
    (votes_no, or no_consensus); accepted rows keep p_yes and get labels (every class the votes
    accepted); `imgnet shard` then takes only accepted rows.

    \b
    Example:
      imgnet votes apply work/manifest.parquet --votes work/votes.parquet --pending reject
    """
    from imgnet_tools.votes.apply import ApplyParams, apply_votes

    result = apply_votes(ApplyParams(
        manifest, votes, out, pending, questions, method=method, engine=engine, confidence=confidence,
        max_votes=max_votes, gold_file=gold_file, spam_threshold=spam_threshold, min_worker_votes=min_worker_votes,
        min_gold_accuracy=min_gold_accuracy))
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"{result.manifest}: {result.asked} of {result.rows} rows asked about")
    click.echo("decisions: " + ", ".join(f"{k} {v}" for k, v in result.decisions.items()))
    click.echo("rejected: " + (", ".join(f"{k} {v}" for k, v in result.rejected.items()) or "none"))
    click.echo(f"multi-label rows: {result.multi_label}; restored from an earlier rejection: {result.restored}")
    if not result.complete:
        note("some images are still pending: imgnet votes next asks for their votes.")


@votes.command("serve")
@click.argument("manifest", type=file_in)
@click.option("--votes", required=True, type=click.Path(dir_okay=False), help="The votes table (created if missing).")
@click.option("--synsets", type=click.Path(exists=True), default=None,
              help="synsets.parquet (or its folder); default: found near MANIFEST.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (anything but loopback needs --token).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port (0: any free one).")
@click.option("--token", default=None, envvar="IMGNET_VOTES_TOKEN",
              help="Shared secret labelers open the page with (?token=...); required off loopback. Env: IMGNET_VOTES_TOKEN.")
@click.option("--tasks", type=file_in, default=None, help="Show only this batch's questions (page_tasks.json).")
@click.option("--journal", type=click.Path(dir_okay=False), default=None,
              help="Answer journal (default: answers.jsonl beside VOTES).")
@click.option("--page-size", type=click.IntRange(1, 500), default=30, show_default=True, help="Images per grid page.")
def serve_cmd(manifest: str, votes: str, synsets: str | None, host: str, port: int, token: str | None,
              tasks: str | None, journal: str | None, page_size: int) -> None:
    """A labeling page for a team labeling its own data: one synset's images in a grid with its
    words and gloss; answer by click or keyboard (y/n/m, arrows); answers are saved as they are
    made (journal + votes table; a restart loses nothing); progress per synset. Stop with Ctrl-C.

    \b
    Example:
      imgnet votes serve work/manifest.parquet --votes work/votes.parquet
      (then open http://127.0.0.1:8765/)
    """
    from imgnet_tools.votes.server import ServeParams, serve

    params = ServeParams(manifest, votes, synsets, host, port, token, tasks, journal, page_size)

    def ready(url: str) -> None:
        note(f"labeling page: {url}  (Ctrl-C to stop)")

    serve(params, on_ready=ready)

