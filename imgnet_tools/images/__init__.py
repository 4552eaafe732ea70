"""One image at a time, plus the two stages built on that: ``scan`` and ``verify``.

Modules (one concern each):

``codec``    the only module that knows pixels: EXIF orientation, upright sizes, RGB conversion (alpha onto
             white, 16-bit narrowed), JPEG encoding and its default quality, magic bytes.
``sniff``    real format from magic bytes, and the format a file name claims.
``check``    decode one image fully and judge it against a :class:`check.Policy`: format, mode, size,
             EXIF, frames, bomb limit -> status (ok | fixable | rejected) and reasons.
``jpegwalk`` walk a JPEG's header segments as strict decoders (DALI's) do: stray bytes PIL skips.
``fix``      normalise a fixable image into an RGB JPEG (orientation applied, first frame).
``keys``     stable, unique, tar-safe sample keys from split / class / file stem.
``sources``  find candidate files: ImageFolder trees, the ILSVRC validation layout, CSV/Parquet lists.
``scan``     stage entry point: ``ScanParams`` / ``scan`` -> ``manifest.parquet``.
``verify``   stage entry point: ``VerifyParams`` / ``verify`` -> the manifest with verify columns.
``phash``    perceptual hash (used by dedup).

The reason vocabulary is declared once, in ``schemas/manifest.schema.json`` (``reason_values``),
and mirrored by :data:`check.REJECT_REASONS` / :data:`check.FIXABLE_REASONS` (a test keeps them equal).
Per-image problems never raise: they come back as a status and reasons.
"""
