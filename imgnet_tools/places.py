"""Where imgnet keeps things on this machine: its cache folder and the default WordNet folder.

Library code never reads environment variables. The CLI reads them once, at start-up
(``cli.main``: ``IMGNET_CACHE_DIR``, ``XDG_CACHE_HOME``, ``IMGNET_WORDNET_DIR``), and hands the result
to :func:`use`; a Python caller passes explicit arguments, or calls :func:`use` itself. Only the
driver needs these (it reads WordNet and stages it); workers never do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Environment variables the CLI reads into :class:`Places` (named here so that messages can say them).
CACHE_ENV = "IMGNET_CACHE_DIR"
WORDNET_ENV = "IMGNET_WORDNET_DIR"


def _home_cache() -> Path:
    return Path.home() / ".cache" / "imgnet"


@dataclass(frozen=True)
class Places:
    """``cache_dir``: imgnet's cache (staged WordNet copies); ``wordnet_dir``: the WordNet dict folder
    to use when a command is given none (None: look on nltk's path, then the system folders)."""

    cache_dir: Path = field(default_factory=_home_cache)
    wordnet_dir: str | None = None


_current: Places | None = None


def current() -> Places:
    """The places in use: those given to :func:`use`, else the defaults (``~/.cache/imgnet``)."""
    return _current if _current is not None else Places()


def use(places: Places | None) -> None:
    """Set the places every later call uses (None: back to the defaults)."""
    global _current
    _current = places

