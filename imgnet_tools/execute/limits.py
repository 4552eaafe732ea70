"""A time limit for one item inside a worker (one file's decode), by SIGALRM.

The handler raises :class:`TimeLimitExceeded` in the worker's main thread, which Pillow's decode
loops notice between blocks; a decoder stuck inside one C call does not return to Python, and
for that the executor's own deadline kills the worker (``execute.pool``), after which the chunk
is split down to that item. Where there is no SIGALRM, or off the main thread, items run unlimited.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class TimeLimitExceeded(Exception):
    """One item ran past its time limit."""


def _alarm(_signum: int, _frame: object) -> None:
    raise TimeLimitExceeded()


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` in the block once ``seconds`` have passed (None: no limit)."""
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable or seconds is None:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
