"""Artifacts on disk: schemas (read from ``schemas/``), atomic writes, Parquet and JSON I/O.

Every artifact imgnet writes is declared in ``schemas/NAME.schema.json`` and carries a
``format_version``; readers refuse versions they do not know. Only :mod:`.parquet` imports pyarrow,
and only when called.
"""
