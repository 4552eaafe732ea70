"""Shards: turn a verified manifest into webdataset tar shards that train loaders read directly.

Modules, one concern each:

``keys``       member names safe for tar, webdataset and DALI (sanitize on write, refuse on read).
``tario``      deterministic ustar writer (fixed header fields, known offsets) and a checked reader.
``sink``       the file a tar goes to: double-buffered (and lent out, so sources are read straight
               into it), hashed while a thread writes, O_DIRECT where the file system allows,
               fsynced on close (or by the caller).
``index``      DALI ``wds2idx`` v1.2 index files: write and parse.
``transform``  optional resize / re-encode of one image (JPEG draft + pillow-simd resize).
``plan``       select rows, seeded shuffle, equal shards (sizes differ by at most one).
``worker``     write one shard's tar and .idx (one task, no pyarrow); ``write_slice`` then writes
               its Parquet slice and ``write_record``, last, its done record.
``state``      output lock, run record, per-shard done records, cleanup of partial files.
``write``      ``ShardParams`` / ``shard()``: the stage entry point (docs/CONTRACTS.md); fsyncs the
               tars of the local pool in groups before their records are written.
``check``      ``check_shards()`` re-reads a directory against dataset.json; ``shards_info()``.

The layout on disk is the "Shard directory" of docs/CONTRACTS.md.
"""
