"""Run-level errors. Each message says what went wrong *and* how to fix it.

Per-image problems are never raised: they become manifest rows with a ``status`` and a
``reason`` (see ``schemas/``). These exceptions are for problems that stop a whole run: missing
data, bad arguments discovered by the library, an output that already exists. The CLI turns any
:class:`ImgnetError` into one line on stderr and its ``exit_code``: 2 for errors in the input
(arguments, files, recipes: the user has something to fix), 1 for a run that failed (a full disk,
a lost worker, a missing dependency).
"""

from __future__ import annotations

import errno
import os

# errno values that mean "this output cannot be written here now": a run-level error, never a row
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS})


class ImgnetError(Exception):
    """Base class: a run-level error with a message fit to show a user as is."""

    exit_code = 1
    label = "Error"  # the CLI prints "LABEL: message"


class InputError(ImgnetError):
    """An input file or argument is malformed (the message names the file and line, or the option)."""

    exit_code = 2


class OutputExistsError(ImgnetError):
    """The output exists and the command was not told to overwrite it."""

    exit_code = 2


class WordNetError(ImgnetError):
    """WordNet 3.0 could not be found or is the wrong version."""


class SchemaError(ImgnetError):
    """An artifact does not match its schema, or carries an unknown format_version (an input to fix)."""

    exit_code = 2


class DependencyError(ImgnetError):
    """An optional dependency needed for the asked feature is not installed."""


class DiskError(ImgnetError):
    """An output could not be written: a full disk, a quota or file-size limit, a read-only file
    system, a folder that cannot be written (exit 1; the finished work stays for a re-run)."""


def write_failed(exc: OSError, what: str) -> DiskError:
    """The one-line error for ``exc`` raised while ``what`` (e.g. ``writing out/manifest.parquet``)."""
    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    return DiskError(f"{what} failed: {reason}; free space (or fix the folder) and run the same command again: "
                     "the work finished so far is kept and will not be redone.")


class LockedError(ImgnetError):
    """Another run holds the lock on this output directory."""


class AwaitingInput(ImgnetError):
    """A run stopped at a human step (the votes stage waiting for answers); not a failure.

    ``result`` is the stage's summary (a dict) so that ``run.json`` can record what is awaited.
    Exit code 3 lets scripts tell "waiting for people" from "failed".
    """

    exit_code = 3
    label = "Waiting"

    def __init__(self, message: str, result: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}
