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
  One file that kills its decoder costs one row, never the run.

Outcomes are yielded as they happen (for progress); stages read the committed results back in
chunk order when they assemble their output.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from imgnet_tools.execute.params import ExecutorParams
from imgnet_tools.execute.tasks import Done, Lost, TaskRun, Warm

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

    ``work(items) -> result``: runs in a worker (a module-level function, so it pickles by name);
    per-item problems are part of the result, never exceptions. ``lost(item, why, detail)``: the
    result for one item alone that was lost (``why``: ``crashed`` or ``timeout``), made in the
    driver. ``join(results)``: one chunk's result from its single-item results, in item order.
    """

    work: Callable[[Sequence[P]], R]
    lost: Callable[[P, str, str], R]
    join: Callable[[list[R]], R]


@dataclass(frozen=True)
class Outcome(Generic[P, R]):
    """A chunk's result: ``reused`` from the store, or just computed (and committed); ``split``
    when the chunk had to be run item by item."""

    chunk: Chunk[P]
    result: R
    reused: bool = False
    split: bool = False


class _Pieces(Generic[R]):
    """Single-item results of a split chunk, filled as they come."""

    def __init__(self, n: int) -> None:
        self.results: list[R | None] = [None] * n
        self.missing = n

    def put(self, position: int, result: R) -> bool:
        """Store one piece; True when the chunk is complete."""
        self.results[position] = result
        self.missing -= 1
        return self.missing == 0


def run_chunks(job: ChunkJob[P, R], chunks: Iterable[Chunk[P]], store: Store[R],
               params: ExecutorParams = ExecutorParams(), warm: Warm | None = None,
               item_timeout: float | None = None) -> Iterator[Outcome[P, R]]:
    """Run every chunk not already in ``store``; yield each chunk's outcome (see the module docstring).

    ``item_timeout``: seconds per item a chunk may take before its worker is killed (a chunk of
    ``n`` items gets ``n`` times that; None: ``params.task_timeout`` for the whole chunk).
    """
    reused: collections.deque[Outcome[P, R]] = collections.deque()
    waiting: dict[int, Chunk[P]] = {}
    pieces: dict[int, tuple[Chunk[P], int]] = {}
    split: dict[int, _Pieces[R]] = {}

    def source() -> Iterator[Sequence[P]]:
        position = 0
        for chunk in chunks:
            found = store.load(chunk)
            if found is not None:
                reused.append(Outcome(chunk, found, reused=True))
                continue
            waiting[position] = chunk
            position += 1
            yield chunk.items

    timeout = (lambda items: item_timeout * max(1, len(items))) if item_timeout else None
    run: TaskRun[Sequence[P], R] = TaskRun(job.work, source(), params, warm, timeout=timeout)

    def finish(chunk: Chunk[P], result: R, was_split: bool) -> Outcome[P, R]:
        store.commit(chunk, result)
        return Outcome(chunk, result, split=was_split)

    def piece_done(index: int, result: R) -> Outcome[P, R] | None:
        chunk, position = pieces.pop(index)
        if split[chunk.index].put(position, result):
            parts = split.pop(chunk.index).results
            return finish(chunk, job.join([r for r in parts if r is not None]), True)
        return None

    for outcome in run:
        while reused:
            yield reused.popleft()
        done: Outcome[P, R] | None
        if outcome.index < 0:  # one item of a split chunk
            item = outcome if isinstance(outcome, Done) else None
            chunk, position = pieces[outcome.index]
            result = item.value if item is not None else job.lost(chunk.items[position], *_why(outcome))
            done = piece_done(outcome.index, result)
        elif isinstance(outcome, Done):
            done = finish(waiting.pop(outcome.index), outcome.value, False)
        else:
            chunk = waiting.pop(outcome.index)
            if len(chunk.items) == 1:
                done = finish(chunk, job.join([job.lost(chunk.items[0], *_why(outcome))]), True)
            else:
                split[chunk.index] = _Pieces(len(chunk.items))
                for position, piece in enumerate(chunk.items):
                    pieces[run.add([piece])] = (chunk, position)
                done = None
        if done is not None:
            yield done
    while reused:
        yield reused.popleft()


def _why(outcome: Done[Any] | Lost) -> tuple[str, str]:
    assert isinstance(outcome, Lost)
    return outcome.why, outcome.detail
