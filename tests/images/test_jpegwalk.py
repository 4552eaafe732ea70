"""The JPEG header walk (images.jpegwalk) agrees with DALI's decoder on JPEGs PIL reads.

Each variant below decodes with PIL; the walk flags exactly those DALI's CPU decoder refuses,
and verify calls them ``fixable`` (``malformed_jpeg``) instead of ``ok``, with a clean fixed copy.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from imgnet_tools.images.check import Policy, check_image
from imgnet_tools.images.fix import normalize_to_jpeg
from imgnet_tools.images.jpegwalk import header_problem
from tests import imagegen
from tests.conftest import require

GOOD = imagegen.jpeg_bytes(3, (64, 48))


def _segment(data: bytes, marker: int) -> int:
    i = 2
    while data[i + 1] != marker:
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return i


DQT, SOS = _segment(GOOD, 0xDB), _segment(GOOD, 0xDA)
VARIANTS = {  # name: (bytes, a strict decoder refuses it)
    "good": (GOOD, False),
    "fill_bytes_before_a_marker": (GOOD[:SOS] + b"\xff\xff" + GOOD[SOS:], False),
    "bytes_after_eoi": (GOOD + b"trailing garbage" * 4, False),
    "stray_bytes_before_dqt": (GOOD[:DQT] + b"hello" + GOOD[DQT:], True),
    "stray_bytes_before_sos": (GOOD[:SOS] + b"xx" + GOOD[SOS:], True),
    "app0_length_1": (GOOD[:4] + b"\x00\x01" + GOOD[6:], True),
}


def _dali_refuses(data: bytes) -> bool:
    from tests.fuzzing import dali_decode_error

    return dali_decode_error(data) is not None


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_walk_flags_what_a_strict_decoder_refuses(name: str) -> None:
    data, refused = VARIANTS[name]
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # PIL reads every variant
    assert (header_problem(data) is not None) is refused
    found = check_image(data, "x.jpg", Policy())
    assert found.status(Policy()) == ("fixable" if refused else "ok")
    assert ("malformed_jpeg" in found.issues) is refused
    if refused:
        assert header_problem(normalize_to_jpeg(data, 1, 90)) is None  # the fixed copy is clean


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_dali_agrees(name: str) -> None:
    require("nvidia.dali")
    data, refused = VARIANTS[name]
    assert _dali_refuses(data) is refused


def test_the_pillow_corpus_file_that_found_it() -> None:
    from tests import pillow_corpus

    try:
        root = pillow_corpus.corpus_dir(fetch=False)
    except pillow_corpus.CorpusUnavailable as exc:
        if os.environ.get("IMGNET_REQUIRE_CORPUS") == "1":  # CI (.ci/run): it must run there
            pytest.fail(f"Pillow test-image corpus unavailable and IMGNET_REQUIRE_CORPUS=1: {exc}")
        pytest.skip(str(exc))
    data = Path(root, "junk_jpeg_header.jpg").read_bytes()
    assert header_problem(data) == "5 stray bytes before the marker at offset 86"
