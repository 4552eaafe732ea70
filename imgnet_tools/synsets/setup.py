"""``imgnet synsets setup-wordnet``: make WordNet 3.0 available to nltk, offline if need be.

Set-up is apart from the reader (:mod:`.wordnet`), which only finds, stages and reads WordNet;
the nltk calls set-up needs (a version check, the download) stay there, the only module that
imports nltk. Run by ``scripts/setup.sh`` on every fresh machine.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgnet_tools.errors import WordNetError
from imgnet_tools.synsets.wordnet import (
    HOW_TO_GET,
    SYSTEM_DIRS,
    WORDNET_VERSION,
    default_dir,
    dict_folder,
    nltk_download,
    nltk_version,
    stage,
    version_at,
)


@dataclass(frozen=True)
class SetupParams:
    """``imgnet synsets setup-wordnet``: where to install, whether to try nltk's download."""

    target: str | None = None
    wordnet_dir: str | None = None
    download: bool = True


@dataclass
class SetupResult:
    """What set-up did: ``action`` is found, downloaded or staged; ``path`` where WordNet now is."""

    action: str
    path: str
    version: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def default_target() -> Path:
    """``sys.prefix/nltk_data``: on nltk's default path for this interpreter (the venv)."""
    return Path(sys.prefix) / "nltk_data"


def _online(host: str = "raw.githubusercontent.com", timeout: float = 3.0) -> bool:
    """True when nltk's download host answers quickly (so an offline download never hangs)."""
    with contextlib.suppress(OSError), socket.create_connection((host, 443), timeout=timeout):
        return True
    return False


def _download(target: Path, note: Callable[[str], None]) -> bool:
    """Try nltk's download into ``target``; False (never an exception) when it fails."""
    if not _online():
        note("offline: skipping nltk.download('wordnet')")
        return False
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        ok = nltk_download(target)
    except Exception as exc:  # noqa: BLE001 - any download failure falls through to the system copy
        note(f"nltk.download('wordnet') failed: {exc}")
        ok = False
    finally:
        socket.setdefaulttimeout(old)
    return ok and version_at(target) == WORDNET_VERSION


def _system_source(wordnet_dir: str | None, system_dirs: Sequence[str]) -> Path:
    fallback = default_dir()
    candidates = [wordnet_dir] if wordnet_dir else ([fallback] if fallback else [])
    for path in [*candidates, *system_dirs]:
        folder = dict_folder(path) if path else None
        if folder is not None:
            return folder
    raise WordNetError(f"no WordNet to install: nltk's download failed and none of "
                       f"{', '.join([*candidates, *system_dirs])} holds WordNet dict files. {HOW_TO_GET}")


def setup_wordnet(
    params: SetupParams,
    note: Callable[[str], None] = lambda m: None,
    system_dirs: Sequence[str] = SYSTEM_DIRS,
) -> SetupResult:
    """Make WordNet 3.0 available to nltk, offline if need be. Idempotent.

    Without ``target``: done if nltk already finds WordNet 3.0 on its path. With ``target``: done if
    ``target`` already holds it. Otherwise try ``nltk.download`` into the target (skipped quickly
    when offline), else copy a system WordNet (plus ``lexnames``) into ``target/corpora/wordnet``.
    """
    target = Path(params.target) if params.target else default_target()
    if params.target is None:
        found = nltk_version()
        if found is not None and found[1] == WORDNET_VERSION:
            return SetupResult("found", found[0], WORDNET_VERSION, "nltk")
    if version_at(target) == WORDNET_VERSION:
        return SetupResult("found", str(target / "corpora" / "wordnet"), WORDNET_VERSION, "target")
    if params.download and _download(target, note):
        return SetupResult("downloaded", str(target / "corpora" / "wordnet"), WORDNET_VERSION, "nltk.download")
    source = _system_source(params.wordnet_dir, system_dirs)
    try:
        folder = stage(source, target)
    except OSError as exc:
        raise WordNetError(f"cannot write {target}: {exc}; pass --target to a writable folder.") from exc
    staged_version = version_at(target) or "unknown"
    if staged_version != WORDNET_VERSION:
        raise WordNetError(f"{source} is WordNet {staged_version}, not 3.0; install WordNet 3.0 ({HOW_TO_GET})")
    return SetupResult("staged", str(folder), staged_version, str(source))
