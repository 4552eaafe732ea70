"""Collect candidate images from the web: ``imgnet collect URLS --out DIR``.

Modules (one concern each):

``inputs``    read URL lists (CSV/TSV/Parquet/JSONL, ImageNet's ``fall11_urls.txt``) in bounded blocks.
``plan``      label and key the rows against the class list; spool them into chunk files.
``urls``      URL safety: http/https only, no loopback/link-local/private hosts (URL, redirects, DNS).
``fetch``     the aiohttp fetcher: keep-alive pool, bounded concurrency, per-host limit, timeouts,
              retries with backoff and jitter, manual redirects, X-Robots-Tag opt-outs, byte limit.
``store``     content checks (magic bytes, bomb limit) and content-addressed atomic storage
              ``DIR/ab/cd/<sha256>.<ext>``.
``chunk``     one chunk as one task, in the worker's event loop: journal, durability, the chunk's part.
``worker``    what the local pool's fork server imports before it forks the workers.
``state``     the folder's layout, lock, fingerprint and run record (resume).
``assemble``  ``manifest.parquet`` from the parts; status and reason counts.
``run``       stage entry point: ``CollectParams`` / ``collect`` -> ``DIR/manifest.parquet``.

The manifest has scan's schema plus collect's columns (``url``, ``final_url``, ``http_status``,
``fetched_at``, ``content_type``, ``caption``, ``fetch_error``), so verify, dedup and shard take it
as they take a scan manifest. Every failure is a rejected row whose reason is declared in
``schemas/manifest.schema.json`` and mirrored by :data:`imgnet_tools.images.check.COLLECT_REASONS`.
"""
