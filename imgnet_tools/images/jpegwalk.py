"""Walk a JPEG's header segments the way strict decoders do, without decoding.

libjpeg (so PIL) skips bytes it does not expect between marker segments ("Corrupt JPEG data:
N extraneous bytes before marker") and takes a segment length below 2; DALI's nvImageCodec
refuses such a file outright ("Invalid marker"; measured with its CPU decoder, the GPU one not
yet), and one of them in a shard stops a whole DALI epoch. Pillow's own test corpus holds one
(``junk_jpeg_header.jpg``), so real files do.
:func:`header_problem` finds them so that verify can call them fixable (a re-encoded copy is
clean) instead of ``ok``.

Only the header is walked, from SOI to the first SOS: inside entropy-coded data any byte is
legal, and bytes after EOI are ignored by every decoder we feed.
"""

from __future__ import annotations

SOI = b"\xff\xd8"
SOS = 0xDA
EOI = 0xD9
# Markers that stand alone (no length field): TEM and RST0..RST7.
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def header_problem(data: bytes | memoryview) -> str | None:
    """What a strict decoder refuses in the header of JPEG ``data`` (None when it is clean)."""
    if bytes(data[:2]) != SOI:
        return "no SOI marker"
    i, n = 2, len(data)
    while i < n:
        if data[i] != 0xFF:
            end = i
            while end < n and data[end] != 0xFF:
                end += 1
            return f"{end - i} stray bytes before the marker at offset {end}"
        while i < n and data[i] == 0xFF:  # fill bytes before a marker are allowed
            i += 1
        if i >= n:
            return "the header ends inside a marker"
        marker = data[i]
        i += 1
        if marker == SOS:
            return None
        if marker == EOI:
            return "EOI before any scan"
        if marker in STANDALONE:
            continue
        if i + 2 > n:
            return f"the header ends inside marker 0x{marker:02X}'s length"
        length = (data[i] << 8) | data[i + 1]
        if length < 2:
            return f"marker 0x{marker:02X} has length {length}"
        i += length
    return "the header ends before the first scan (SOS)"
