"""Run-level errors. Each message says what went wrong *and* how to fix it.

Per-image problems are never raised: they become manifest rows with a ``status`` and a
``reason`` (see ``schemas/``). These exceptions are for problems that stop a whole run: missing
data, bad arguments discovered by the library, an output that already exists. The CLI turns any
:class:`ImgnetError` into one line on stderr and exit code 1.
"""

from __future__ import annotations


class ImgnetError(Exception):
    """Base class: a run-level error with a message fit to show a user as is."""

    exit_code = 1
    label = "Error"  # the CLI prints "LABEL: message"


class InputError(ImgnetError):
    """An input file or argument is malformed (the message names the file and line)."""


class OutputExistsError(ImgnetError):
    """The output exists and the command was not told to overwrite it."""


class WordNetError(ImgnetError):
    """WordNet 3.0 could not be found or is the wrong version."""


class SchemaError(ImgnetError):
    """An artifact does not match its schema, or carries an unknown format_version."""


class DependencyError(ImgnetError):
    """An optional dependency needed for the asked feature is not installed."""


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
