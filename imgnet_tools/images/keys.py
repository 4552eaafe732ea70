"""Sample keys: stable, unique, and safe as a tar member stem (and as a webdataset key).

A key is built from split, class and file stem: ``train-n01440764_10026`` (the class is left out
when the stem already starts with it, as ImageNet's training names do), ``val-n01751748-ILSVRC2012_val_00000001``.
Only ``[A-Za-z0-9_-]`` are kept as is; every other character (``/``, ``.``, spaces, control
characters, non-ASCII, bytes of a non-UTF-8 name) becomes ``%XX`` per UTF-8 byte, so a key has no
``/``, no ``..`` and no leading dot, and webdataset (which splits keys at the first dot) keeps it whole.
Collisions get ``-2``, ``-3``, ... in a fixed order, so the same input gives the same keys.
"""

from __future__ import annotations

import hashlib
import os
import re
import string

_SAFE = frozenset(string.ascii_letters + string.digits + "_-")
_PLAIN = re.compile(r"[A-Za-z0-9_-]*")
MAX_KEY = 160


def escape(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9_-]`` written as ``%XX`` UTF-8 bytes.

    Lone surrogates (how Python decodes the bytes of a non-UTF-8 file name) become their raw byte.
    """
    if _PLAIN.fullmatch(text):  # the common case (ImageNet names): nothing to escape
        return text
    out = []
    for ch in text:
        if ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def base_key(split: str, class_name: str | None, file_name: str) -> str:
    """Key before collision handling: ``split-[class-]stem``, escaped, at most :data:`MAX_KEY` chars."""
    stem = os.path.splitext(file_name)[0] or file_name
    parts = [split]
    if class_name and not stem.startswith(class_name):
        parts.append(class_name)
    parts.append(stem)
    key = "-".join(escape(p) for p in parts)
    if len(key) > MAX_KEY:  # keep it readable and unique: a prefix plus a digest of the whole
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        key = f"{key[: MAX_KEY - 17]}-{digest}"
    return key


class KeyAllocator:
    """Hands out unique keys; keys already taken (from an earlier run) are reserved first."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self._taken: set[str] = set(taken or ())

    def allocate(self, key: str) -> str:
        """``key`` itself, or ``key-N`` with the smallest N >= 2 that is still free."""
        candidate, n = key, 2
        while candidate in self._taken:
            candidate, n = f"{key}-{n}", n + 1
        self._taken.add(candidate)
        return candidate
