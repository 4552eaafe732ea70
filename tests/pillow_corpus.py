"""The Pillow test-image corpus: ~1,070 real awkward files from Pillow's own source distribution.

Pillow's sdist ships ``Tests/images/`` (truncated, CMYK, 16-bit, decompression bombs, odd
BMP/TIFF/GIF/ICO/PNG variants, broken EXIF, formats we do not decode). pillow-simd's sdist has
none of it, so the tests fetch Pillow's, pinned and checked by sha256, once, into a cache outside
the repository:

    ~/.cache/imgnet/pillow-corpus/<version>/images/      (IMGNET_PILLOW_CORPUS=DIR overrides ~/.cache/...)

``scripts/setup.sh`` (so ``make test``) runs ``python -m tests.pillow_corpus`` to fill it; the
tests call :func:`corpus_dir`, which fills it too if need be, and skip (with the reason) only
when it can be neither found nor made (no network and no cache). The folder is made read-only
data: the tests hash it before and after every run to prove no stage writes to its sources.

Only the test helpers read the environment variable; the library never does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "11.3.0"
SDIST = f"pillow-{VERSION}.tar.gz"
SDIST_SHA256 = "3828ee7586cd0b2091b6209e5ad53e20d0649bbe87164a459d0676e035e8f523"
MEMBER_PREFIX = f"pillow-{VERSION}/Tests/images/"
ENV = "IMGNET_PILLOW_CORPUS"
DONE = ".complete"  # written last: a folder without it is an interrupted unpack


class CorpusUnavailable(RuntimeError):
    """The corpus is not cached and cannot be fetched (the message says why)."""


def cache_root() -> Path:
    """Where corpora are kept: ``$IMGNET_PILLOW_CORPUS``, else ``$XDG_CACHE_HOME/imgnet/pillow-corpus``."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imgnet" / "pillow-corpus"


def corpus_dir(fetch: bool = True) -> Path:
    """The unpacked ``Tests/images`` folder of the pinned Pillow sdist (fetched when missing).

    Raises :class:`CorpusUnavailable` when it is not cached and ``fetch`` is False or fails.
    """
    home = cache_root() / VERSION
    images = home / "images"
    if (home / DONE).is_file() and images.is_dir():
        return images
    if not fetch:
        raise CorpusUnavailable(f"the Pillow {VERSION} corpus is not in {home}; run `python -m tests.pillow_corpus`")
    home.mkdir(parents=True, exist_ok=True)
    sdist = home / SDIST
    if not sdist.is_file() or _sha256(sdist) != SDIST_SHA256:
        _download(home)
    found = _sha256(sdist)
    if found != SDIST_SHA256:
        sdist.unlink()
        raise CorpusUnavailable(f"{SDIST} has sha256 {found}, expected {SDIST_SHA256}: refusing it")
    _unpack(sdist, images)
    (home / DONE).write_text(f"{SDIST} {SDIST_SHA256}\n")
    return images


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _download(home: Path) -> None:
    """``pip download`` the pinned sdist into ``home`` (pip: the registry's own client)."""
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check",
            "-q", f"pillow=={VERSION}", "-d", str(home)]
    errors = []
    # pip prepares the sdist's metadata; with build isolation off it uses our setuptools, offline
    for extra in (["--no-build-isolation"], []):
        try:
            proc = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
            continue
        if proc.returncode == 0 and (home / SDIST).is_file():
            return
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        errors.append(lines[-1] if lines else f"pip exited {proc.returncode}")
    raise CorpusUnavailable(f"cannot download pillow=={VERSION} (no network or no PyPI?): {errors[-1]}")


def _unpack(sdist: Path, images: Path) -> None:
    """Extract the regular files under ``Tests/images/`` into ``images`` (a fresh folder, renamed in
    place); names that would leave the folder and anything but plain files are skipped."""
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=images.parent))
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            for member in archive:
                if not member.isfile() or not member.name.startswith(MEMBER_PREFIX):
                    continue
                rel = member.name[len(MEMBER_PREFIX):]
                parts = Path(rel).parts
                if not rel or rel.startswith("/") or ".." in parts:
                    continue
                target = tmp.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                os.utime(target, (member.mtime, member.mtime))
        if images.exists():
            shutil.rmtree(images)
        os.replace(tmp, images)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def tree_digest(root: Path) -> str:
    """sha256 over every path under ``root`` (sorted), its type, size, mtime and content: equal
    before and after a run only if nothing was written, touched, added or removed."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames]):
            path = Path(dirpath) / name
            st = path.lstat()
            digest.update(os.fsencode(path.relative_to(root)) + b"\0")
            digest.update(f"{st.st_mode:o} {st.st_size} {st.st_mtime_ns}\0".encode())
            if path.is_file() and not path.is_symlink():
                digest.update(_sha256(path).encode())
    return digest.hexdigest()


def main() -> int:
    """``python -m tests.pillow_corpus``: fill the cache (set-up); print the folder."""
    try:
        print(corpus_dir())
    except CorpusUnavailable as exc:
        print(f"pillow corpus unavailable: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
