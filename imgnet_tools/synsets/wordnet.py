"""WordNet 3.0 access, offline: find it, stage it where nltk accepts it, read the noun synsets.

This is the only module that imports nltk. Everything it hands out is plain Python data
(:class:`NounRecords`), so the graph and the exports never touch nltk objects.

Where WordNet is looked for, in order (the first hit wins):

1. ``--wordnet-dir`` / ``$IMGNET_WORDNET_DIR``: a folder of WordNet dict files (``data.noun``,
   ``index.noun``, ...), or an nltk data root holding ``corpora/wordnet``;
2. nltk's own data path (``nltk.data.find("corpora/wordnet")``, e.g. after ``nltk.download``);
3. a system install (Debian/Ubuntu ``wordnet-base`` + ``wordnet-sense-index``: ``/usr/share/wordnet``).

Why staging: nltk 3.10 opens corpus files only inside a directory on ``nltk.data.path`` and refuses
symlinks and hard links that lead elsewhere, and Debian's files lack the ``lexnames`` file nltk's
reader needs. So a folder found in (1) or (3) is copied once into
``<cache>/wordnet/<key>/corpora/wordnet`` (cache: :mod:`imgnet_tools.places`, which the CLI sets
from ``$IMGNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/imgnet``, else ``~/.cache/imgnet``) together with the ``lexnames`` file shipped
in this package, and that cache root is put on ``nltk.data.path`` when a reader is opened.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgnet_tools.errors import WordNetError
from imgnet_tools.places import WORDNET_ENV

if TYPE_CHECKING:  # pragma: no cover
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

WORDNET_VERSION = "3.0"
SYSTEM_DIRS: tuple[str, ...] = ("/usr/share/wordnet", "/usr/local/share/wordnet", "/usr/local/WordNet-3.0/dict")
ENV_DIR = WORDNET_ENV  # read by the CLI (cli.main) into places; named in messages
LEXNAMES = Path(__file__).with_name("lexnames")
# Files nltk's WordNetCorpusReader may open (lexnames comes from this package when missing).
CORPUS_FILES: tuple[str, ...] = (
    "lexnames", "index.sense", "cntlist.rev",
    "index.adj", "index.adv", "index.noun", "index.verb",
    "data.adj", "data.adv", "data.noun", "data.verb",
    "adj.exc", "adv.exc", "noun.exc", "verb.exc",
)
REQUIRED_FILES: tuple[str, ...] = (
    "index.adj", "index.adv", "index.noun", "index.verb", "data.adj", "data.adv", "data.noun", "data.verb",
)
HOW_TO_GET = (
    "Get WordNet 3.0 with one of: `imgnet synsets setup-wordnet` (offline, after "
    "`apt-get install wordnet-base wordnet-sense-index`), `python -m nltk.downloader wordnet` (online), "
    f"or pass --wordnet-dir DIR / set {ENV_DIR}=DIR to a folder of WordNet 3.0 dict files (data.noun, index.noun, ...)."
)


@dataclass(frozen=True)
class WordNetSource:
    """Where WordNet was found: ``kind`` is option, env, nltk or system; ``path`` the folder read."""

    kind: str
    path: str
    version: str = ""

    def describe(self) -> str:
        """One line for people: ``WordNet 3.0 (system: /usr/share/wordnet)``."""
        return f"WordNet {self.version or '?'} ({self.kind}: {self.path})"


@dataclass
class NounRecords:
    """Every noun synset as columns, sorted by offset; parent lists hold offsets, sorted."""

    offsets: list[int]
    lemmas: list[list[str]]
    gloss: list[str]
    examples: list[list[str]]
    lexname: list[str]
    parents: list[list[int]]
    instance_parents: list[list[int]]


# ----------------------------------------------------------------------------------------------
# Finding and staging


def cache_dir() -> Path:
    """imgnet's cache folder (:mod:`imgnet_tools.places`; the CLI sets it from ``$IMGNET_CACHE_DIR``)."""
    from imgnet_tools.places import current

    return current().cache_dir


def default_dir() -> str | None:
    """The WordNet folder to use when a call names none (:mod:`imgnet_tools.places`; the CLI sets it
    from ``$IMGNET_WORDNET_DIR``)."""
    from imgnet_tools.places import current

    return current().wordnet_dir


def dict_folder(path: str | os.PathLike[str]) -> Path | None:
    """The folder holding WordNet dict files at or under ``path`` (itself, corpora/wordnet or dict)."""
    root = Path(path).expanduser()
    for candidate in (root, root / "corpora" / "wordnet", root / "dict"):
        if all((candidate / f).is_file() for f in REQUIRED_FILES):
            return candidate.resolve()
    return None


def _stamp(folder: Path) -> dict[str, list[int]]:
    """Size and mtime of every corpus file in ``folder``: staging is redone when it changes."""
    stamp = {}
    for name in CORPUS_FILES:
        path = folder / name
        if path.is_file():
            st = path.stat()
            stamp[name] = [st.st_size, st.st_mtime_ns]
    return stamp


def stage(source: Path, root: Path) -> Path:
    """Copy WordNet files from ``source`` into ``root/corpora/wordnet`` (plus lexnames); return it.

    Copies, not links: nltk refuses symlinks and hard links out of its roots. Idempotent: a staged
    folder whose stamp matches the source is kept. Written atomically (temp folder, rename).
    """
    target = root / "corpora" / "wordnet"
    stamp = {"source": str(source), "files": _stamp(source)}
    stamp_file = target / ".imgnet-stage.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-wordnet.", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a venv's nltk_data is read by everyone
        for name in CORPUS_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, tmp / name)
        if not (tmp / "lexnames").is_file():
            shutil.copyfile(LEXNAMES, tmp / "lexnames")
        (tmp / ".imgnet-stage.json").write_text(json.dumps(stamp))
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
            return target  # another process staged the same files at the same time
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _staged_root(source: Path) -> Path:
    """Cache root (to put on nltk's path) for a dict folder found outside nltk's data path."""
    key = hashlib.sha1(str(source).encode()).hexdigest()[:12]
    root = cache_dir() / "wordnet" / key
    try:
        stage(source, root)
    except OSError as exc:
        raise WordNetError(
            f"cannot stage WordNet from {source} into {root}: {exc}. Set IMGNET_CACHE_DIR to a writable folder."
        ) from exc
    return root


def _nltk_pointer() -> Any:
    """nltk's own corpora/wordnet (folder or zip) on its data path, or None."""
    import nltk

    staged = str(cache_dir() / "wordnet")
    paths = [p for p in nltk.data.path if not str(p).startswith(staged)]  # our own staging is not "nltk's"
    try:
        return nltk.data.find("corpora/wordnet", paths=paths)
    except LookupError:
        return None


@dataclass(frozen=True)
class Located:
    """A WordNet that nltk will accept: a path pointer, and an nltk data root to add (or None)."""

    source: WordNetSource
    pointer: Any
    nltk_root: Path | None


def locate(
    wordnet_dir: str | None = None,
    use_nltk: bool = True,
    system_dirs: Sequence[str] = SYSTEM_DIRS,
) -> Located:
    """Find WordNet in the documented order; raise :class:`WordNetError` saying how to get it."""
    import nltk

    explicit = [("option", wordnet_dir)] if wordnet_dir else []
    fallback = default_dir()
    if not explicit and fallback:
        explicit = [("env", fallback)]
    for kind, path in explicit:
        folder = dict_folder(path)  # type: ignore[arg-type]
        if folder is None:
            raise WordNetError(f"{path} (from --wordnet-dir/{ENV_DIR}) holds no WordNet dict files "
                               f"({', '.join(REQUIRED_FILES[:2])}, ...). {HOW_TO_GET}")
        root = _staged_root(folder)
        pointer = nltk.data.FileSystemPathPointer(str(root / "corpora" / "wordnet"))
        return Located(WordNetSource(kind, str(folder)), pointer, root)
    if use_nltk:
        pointer = _nltk_pointer()
        if pointer is not None:
            return Located(WordNetSource("nltk", str(getattr(pointer, "path", pointer))), pointer, None)
    for path in system_dirs:
        folder = dict_folder(path)
        if folder is not None:
            root = _staged_root(folder)
            pointer = nltk.data.FileSystemPathPointer(str(root / "corpora" / "wordnet"))
            return Located(WordNetSource("system", str(folder)), pointer, root)
    looked = [f"{ENV_DIR} (unset)", "nltk data path" if use_nltk else "", *system_dirs]
    raise WordNetError(f"WordNet 3.0 not found (looked in: {', '.join(x for x in looked if x)}). {HOW_TO_GET}")


@functools.cache
def _reader_class() -> type:
    """nltk's reader minus the OMW sense-key mapping it builds at start-up.

    ``WordNetCorpusReader.__init__`` calls ``map_wn()``, which reads ``index.sense`` twice to map
    WordNet versions for the Open Multilingual WordNet (about 4 s). imgnet never uses OMW (it
    passes no OMW reader), so the mapping is skipped; everything else is nltk's own code.
    """
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class NounReader(WordNetCorpusReader):  # type: ignore[misc]
        def map_wn(self, version: str = "wordnet") -> None:
            return None

    return NounReader


def open_reader(located: Located, lean: bool = True) -> WordNetCorpusReader:
    """Open an nltk WordNet reader on a located WordNet (adds its root to nltk's path first)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    if located.nltk_root is not None and str(located.nltk_root) not in nltk.data.path:
        nltk.data.path.insert(0, str(located.nltk_root))
    cls = _reader_class() if lean else WordNetCorpusReader
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "multilingual functions are not available": intended
            reader: WordNetCorpusReader = cls(located.pointer, None)
    except (OSError, LookupError, ValueError, AssertionError) as exc:
        raise WordNetError(f"cannot read {located.source.describe()}: {exc}. {HOW_TO_GET}") from exc
    return reader


def check_version(reader: WordNetCorpusReader, source: WordNetSource, allow_other: bool) -> WordNetSource:
    """Return ``source`` with its version; raise unless it is 3.0 or ``allow_other``."""
    version = str(reader.get_version() or "unknown")
    if version != WORDNET_VERSION and not allow_other:
        raise WordNetError(
            f"{source.path} is WordNet {version}, but ImageNet ids are WordNet 3.0 offsets. Point --wordnet-dir "
            "at WordNet 3.0, or pass --allow-other-wordnet if you know the ids still fit."
        )
    return WordNetSource(source.kind, source.path, version)


def open_wordnet(
    wordnet_dir: str | None = None, allow_other: bool = False, **locate_kwargs: Any
) -> tuple[WordNetCorpusReader, WordNetSource]:
    """Locate, open and version-check WordNet: (reader, source)."""
    located = locate(wordnet_dir, **locate_kwargs)
    reader = open_reader(located)
    return reader, check_version(reader, located.source, allow_other)


# ----------------------------------------------------------------------------------------------
# Reading


def read_nouns(reader: WordNetCorpusReader) -> NounRecords:
    """Every noun synset as columns, parsed once from the synset objects nltk builds.

    Reads the parsed fields (offset, lemmas, definition, lexname, pointers) straight from each
    synset instead of calling ``hypernyms()``, which would look every parent up again.
    """
    rec = NounRecords([], [], [], [], [], [], [])
    for s in reader.all_synsets("n"):
        pointers = s._pointers
        rec.offsets.append(s._offset)
        rec.lemmas.append([n.replace("_", " ") for n in s._lemma_names])
        rec.gloss.append(s._definition)
        rec.examples.append(list(s._examples))
        rec.lexname.append(s._lexname)
        rec.parents.append(sorted(o for _, o in pointers.get("@", ())))
        rec.instance_parents.append(sorted(o for _, o in pointers.get("@i", ())))
    return rec


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a block that allocates many long-lived objects.

    Parsing 82,115 synsets creates millions of objects that all stay alive; every automatic
    collection would walk them again (about half of the parse time). Reference counting still
    frees everything; the collector is restored, in its previous state, on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# The last WordNet read in this process, keyed by where it came from and its files' sizes and
# mtimes: a second build (or show/stats) in one process (a recipe, the tests) reuses it.
_LAST: dict[tuple[str, str, str, bool], tuple[NounRecords, WordNetSource]] = {}


def clear_cache() -> None:
    """Forget the last WordNet read, so that the next :func:`load_nouns` parses again (benchmarks)."""
    _LAST.clear()


def load_nouns(wordnet_dir: str | None = None, allow_other: bool = False) -> tuple[NounRecords, WordNetSource]:
    """Locate, open and read WordNet's nouns: (records, source). Treat the records as read-only.

    The parse uses a fresh nltk reader; the result is kept for the next call in this process while
    the WordNet files it came from are unchanged (see :func:`clear_cache`).
    """
    located = locate(wordnet_dir)
    key = (located.source.kind, located.source.path, json.dumps(_stamp(Path(located.source.path))), allow_other)
    if key in _LAST:
        return _LAST[key]
    with paused_gc():
        reader = open_reader(located)
        source = check_version(reader, located.source, allow_other)
        records = read_nouns(reader)
        reader._synset_offset_cache.clear()  # drop the parsed synsets now, not at the next collection
    _LAST.clear()
    _LAST[key] = (records, source)
    return records, source


# ----------------------------------------------------------------------------------------------
# What set-up (synsets.setup) needs from nltk


def version_at(root: Path) -> str | None:
    """Version of a WordNet staged at ``root/corpora/wordnet`` that nltk accepts, else None."""
    import nltk

    folder = root / "corpora" / "wordnet"
    if dict_folder(folder) is None or not (folder / "lexnames").is_file():
        return None
    located = Located(WordNetSource("target", str(folder)), nltk.data.FileSystemPathPointer(str(folder)), root)
    try:
        return str(open_reader(located).get_version())
    except WordNetError:
        return None


def nltk_version() -> tuple[str, str] | None:
    """(path, version) of the WordNet nltk finds on its own data path, or None."""
    pointer = _nltk_pointer()
    if pointer is None:
        return None
    located = Located(WordNetSource("nltk", str(getattr(pointer, "path", pointer))), pointer, None)
    try:
        return located.source.path, str(open_reader(located).get_version())
    except WordNetError:
        return None


def nltk_download(target: Path) -> bool:
    """``nltk.download("wordnet")`` into ``target``; raises what nltk raises when it fails."""
    import nltk

    return bool(nltk.download("wordnet", download_dir=str(target), quiet=True, raise_on_error=True))


# ----------------------------------------------------------------------------------------------
# Lemma look-up (synsets.lemmas: category names of other datasets -> wnids)


@dataclass(frozen=True)
class Sense:
    """One noun sense of a lemma: the synset, its lexicographer file, whether it is an instance
    (a proper noun: only instance-of parents), and the lemma spelling WordNet uses."""

    offset: int
    lexname: str
    instance: bool
    lemma: str


def noun_senses(queries: Iterable[str], wordnet_dir: str | None = None) -> dict[str, list[Sense]]:
    """Noun senses of each query word, most frequent first (nltk's order, with morphy: plurals
    and inflections are looked up as their base form). Spaces in a query count as underscores."""
    reader, _ = open_wordnet(wordnet_dir)
    found: dict[str, list[Sense]] = {}
    for query in queries:
        word = query.strip().replace(" ", "_")
        senses = []
        bases = {word.lower(), *(b.lower() for b in reader._morphy(word, "n"))} if word else set()
        for s in reader.synsets(word, pos="n") if word else []:
            pointers = s._pointers
            names = [n for n in s._lemma_names if n.lower() in bases] or [s._lemma_names[0]]
            senses.append(Sense(s._offset, s._lexname, not pointers.get("@") and bool(pointers.get("@i")),
                                names[0].replace("_", " ")))
        found[query] = senses
    return found
