"""Sample keys that are safe tar member stems, and the reader-side check of member names.

webdataset and DALI split a member name at the first dot of its base name into key and
extension, so a key must hold no dot; tar extractors follow ``/`` and ``..``, so a key must hold
neither. We keep a conservative alphabet and, when a key has to change, append a short hash of
the original so that two different keys never map to the same stem.
"""

from __future__ import annotations

import hashlib
import re

MAX_KEY_LEN = 80  # keeps "KEY.json" within ustar's 100-byte name field
_BAD = re.compile(r"[^A-Za-z0-9_+=,@~-]")
SAFE_KEY_PATTERN = r"[A-Za-z0-9_+=,@~-]{1,%d}" % MAX_KEY_LEN  # a key kept as it is (also RE2 syntax, for Arrow)
_SAFE_KEY = re.compile(SAFE_KEY_PATTERN)
_SAFE_MEMBER = re.compile(r"([A-Za-z0-9_+=,@~-]{1,%d})\.([A-Za-z0-9]{1,8})" % MAX_KEY_LEN)


def sanitize_key(key: str) -> str:
    """Return ``key`` itself when it is safe, otherwise a safe stem with a hash of the original."""
    if _SAFE_KEY.fullmatch(key):
        return key
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    stem = _BAD.sub("_", key)[: MAX_KEY_LEN - len(digest) - 1]
    return f"{stem}_{digest}"


def split_member(name: str) -> tuple[str, str] | None:
    """``(key, ext)`` for a safe member name ``KEY.ext``; ``None`` for anything that could escape
    the extraction folder or be mis-grouped (``/``, ``..``, a leading dot, control characters)."""
    match = _SAFE_MEMBER.fullmatch(name)
    if match is None:
        return None
    return match.group(1), match.group(2)
