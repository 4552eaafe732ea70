"""The chunked-stage skeleton: scan, verify, dedup, shard and collect are all built on it.

A stage cuts its input into :class:`Chunk` s (a few hundred to a few thousand paths, URLs or
samples; never whole rows) and gives a :class:`ChunkJob`: what a worker does with a chunk, what
one item gets when its worker keeps dying, and how single-item results join back into one.
:func:`run_chunks` then

* skips every chunk whose result a :class:`Store` already holds under the same key (resume:
  a killed run redoes at most the chunks that were in flight);
* runs the others on the executor (:mod:`.tasks`: local pool or Ray), at most as many at once
  as there are workers, taking chunks from the input lazily, so memory does not grow with the
  input;
* commits each result to the store as it arrives, in whatever order chunks finish;
* when a chunk's worker dies (or the chunk runs past its time limit) more often than the
  retries allow, runs each of its items alone; an item that is lost alone too gets
  ``job.lost(item, why, detail)``, e.g. a row rejected as ``crashed_decoder`` or ``timeout``.
  One file that kills its decoder costs one row, never the run. A stage whose chunk result is
  one whole (a shard's tar) instead gives ``job.probe``, run on each item alone to find the ones
  that kill workers, and ``job.without``, the chunk again without them; that is run once more.

Outcomes are yielded as they happen (for progress); stages read the committed results back in
chunk order when they assemble their output.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from imgnet_tools.errors import write_failed
from imgnet_tools.execute.params import ExecutorParams
from imgnet_tools.execute.tasks import Done, Lost, TaskRun, Warm, WorkerLostError

P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Chunk(Generic[P]):
    """Chunk ``index`` of a stage's input: its ``items`` and a ``key`` (digest of everything that
    decides its result: the items, the parameters), under which the result is stored."""

    index: int
    items: Sequence[P]
    key: str


class Store(Protocol[R]):  # type: ignore[misc]
    """Where a stage keeps committed chunk results."""

    def load(self, chunk: Chunk[Any]) -> R | None:
        """The committed result of ``chunk`` (same index and key), or None."""

    def commit(self, chunk: Chunk[Any], result: R) -> None:
        """Keep ``result`` as ``chunk``'s, durably enough to be found by a later run."""


@dataclass(frozen=True)
class ChunkJob(Generic[P, R]):
    """What a stage does with its chunks.

    ``work(items) -> result``: runs in a worker (a module-level function or a ``functools.partial``
    of one, so it pickles by name); per-item problems are part of the result, never exceptions.
    Then, for chunks whose worker keeps dying, either (row stages)
    ``lost(item, why, detail)``: the result for one item alone that was lost (``why``: ``crashed``
    or ``timeout``), made in the driver, and ``join(results)``: one chunk's result from its
    single-item results, in item order; or (whole-chunk stages) ``probe(item)``: run in a worker on
    one item alone (its return value is not used), and ``without(chunk, lost)``: the chunk's items
    again, leaving out ``lost`` (``(position, why, detail)`` of the items whose probe was lost).
    """

    work: Callable[[Sequence[P]], R]
    lost: Callable[[P, str, str], R] | None = None
    join: Callable[[list[R]], R] | None = None
    probe: Callable[[P], object] | None = None
    without: "Callable[[Chunk[P], list[tuple[int, str, str]]], Sequence[P]] | None" = None

    def __post_init__(self) -> None:
        rows = self.lost is not None and self.join is not None
        whole = self.probe is not None and self.without is not None
        if rows == whole:
            raise ValueError("a ChunkJob needs either lost and join (row stages) or probe and without (whole chunks)")


@dataclass(frozen=True)
class Outcome(Generic[P, R]):
    """A chunk's result: ``reused`` from the store, or just computed (and committed); ``split``
    when the chunk had to be run item by item."""

    chunk: Chunk[P]
    result: R
    reused: bool = False
    split: bool = False


class _Pieces:
    """Single-item outcomes of a split chunk, filled as they come."""

    def __init__(self, n: int) -> None:
        self.results: list[Any] = [None] * n
        self.missing = n

    def put(self, position: int, result: Any) -> bool:
        """Store one piece; True when the chunk is complete."""
        self.results[position] = result
        self.missing -= 1
        return self.missing == 0


def _dispatch(call: tuple[Callable[[Any], Any], Any]) -> Any:
    """What a worker runs: ``fn(arg)`` (chunks and single-item probes share one task stream)."""
    fn, arg = call
    return fn(arg)


def _module(fn: Callable[..., Any]) -> str | None:
    return getattr(getattr(fn, "func", fn), "__module__", None)


def run_chunks(job: ChunkJob[P, R], chunks: Iterable[Chunk[P]], store: Store[R],
               params: ExecutorParams = ExecutorParams(), warm: Warm | None = None,
               item_timeout: float | None = None) -> Iterator[Outcome[P, R]]:
    """Run every chunk not already in ``store``; yield each chunk's outcome (see the module docstring).

    ``item_timeout``: seconds per item a chunk may take before its worker is killed (a chunk of
    ``n`` items gets ``n`` times that; None: ``params.task_timeout`` for the whole chunk).
    """
    reused: collections.deque[Outcome[P, R]] = collections.deque()
    waiting: dict[int, Chunk[P]] = {}  # task index -> chunk (first runs and reruns without lost items)
    pieces: dict[int, tuple[Chunk[P], int]] = {}
    split: dict[int, _Pieces] = {}

    def source() -> Iterator[tuple[Callable[[Any], Any], Any]]:
        position = 0
        for chunk in chunks:
            found = store.load(chunk)
            if found is not None:
                reused.append(Outcome(chunk, found, reused=True))
                continue
            waiting[position] = chunk
            position += 1
            yield job.work, chunk.items

    def timeout(call: tuple[Callable[[Any], Any], Any]) -> float | None:
        assert item_timeout is not None
        return item_timeout * (max(1, len(call[1])) if call[0] is job.work else 1)

    run: TaskRun[Any, Any] = TaskRun(_dispatch, source(), params, warm, timeout=timeout if item_timeout else None,
                                     preload=_module(job.work))

    def finish(chunk: Chunk[P], result: R, was_split: bool) -> Outcome[P, R]:
        try:
            store.commit(chunk, result)
        except OSError as exc:  # the work folder cannot take it (a full disk): stop, keeping what is committed
            raise write_failed(exc, f"committing chunk {chunk.index} to {getattr(store, 'folder', 'the work folder')}"
                               ) from exc
        return Outcome(chunk, result, split=was_split)

    def split_up(chunk: Chunk[P]) -> None:
        split[chunk.index] = _Pieces(len(chunk.items))
        for position in range(len(chunk.items)):
            piece = (job.probe, chunk.items[position]) if job.probe else (job.work, [chunk.items[position]])
            pieces[run.add(piece)] = (chunk, position)

    def piece_done(index: int, outcome: Done[Any] | Lost) -> Outcome[P, R] | None:
        chunk, position = pieces.pop(index)
        if job.probe is not None:
            result: Any = None if isinstance(outcome, Done) else (position, outcome.why, outcome.detail)
        elif isinstance(outcome, Done):
            result = outcome.value
        else:
            assert job.lost is not None
            result = job.lost(chunk.items[position], outcome.why, outcome.detail)
        if not split[chunk.index].put(position, result):
            return None
        parts = split.pop(chunk.index).results
        if job.without is not None:
            again = job.without(chunk, [p for p in parts if p is not None])
            waiting[run.add((job.work, again))] = Chunk(chunk.index, again, chunk.key)
            return None
        assert job.join is not None
        return finish(chunk, job.join(parts), True)

    for outcome in run:
        while reused:
            yield reused.popleft()
        done: Outcome[P, R] | None = None
        if outcome.index in pieces:
            done = piece_done(outcome.index, outcome)
        elif isinstance(outcome, Done):
            chunk = waiting.pop(outcome.index)
            done = finish(chunk, outcome.value, outcome.index < 0)
        else:
            chunk = waiting.pop(outcome.index)
            if outcome.index < 0:  # a rerun without the items that crash alone was lost again
                raise WorkerLostError(
                    f"chunk {chunk.index} keeps killing its worker ({outcome.detail}) even without the items that "
                    "crash on their own; check memory and system logs (dmesg), then run again: finished work is kept.")
            if job.join is not None and len(chunk.items) == 1:
                assert job.lost is not None
                done = finish(chunk, job.join([job.lost(chunk.items[0], outcome.why, outcome.detail)]), True)
            else:
                split_up(chunk)
        if done is not None:
            yield done
    while reused:
        yield reused.popleft()
