"""Human verification, as ImageNet did it: crowd votes -> consensus -> the manifest.

A question is (image key, wnid): "does this image show this synset?"; an answer is yes, no or
maybe, from a worker, at a time. Modules (one concern each):

``table``         the votes table (schema ``votes``): atomic, locked, de-duplicated appends; each
                  worker's latest answer.
``records``       what importers yield (answer records) and the problems they count.
``mturk``         MTurk batch input CSV and HIT layout (export); batch results CSV (import).
``label_studio``  Label Studio tasks and labeling config (export); JSON / JSON-MIN export (import).
``page``          our page's task file and its answer journal (answers.jsonl).
``longtable``     plain CSV/Parquet tables of key, wnid, worker, answer (import).
``importer``      ``ImportParams`` / ``import_votes``: detect, parse, check, append.
``synsets``       words and gloss per synset from ``synsets.parquet``.
``questions``     which manifest rows are asked about; their status before the votes.
``gold``          gold questions (known answers) from files or an earlier consensus.
``tasks``         grouping questions into tasks of one synset with gold mixed in.
``export``        ``ExportParams`` / ``export``: a batch folder in every format.
``models``        the aggregation methods: crowd-kit's MajorityVote, GLAD, DawidSkene, and
``dawid_skene``   the vectorised numpy Dawid-Skene EM (same results, measured faster).
``workers``       per-worker gold accuracy, agreement, spam score, who is dropped.
``consensus``     ImageNet's dynamic consensus: decisions and votes still needed per synset.
``aggregate``     ``AggregateParams`` / ``aggregate`` and ``build_consensus``, the one pipeline.
``adaptive``      ``NextParams`` / ``next_votes``: the next round's batch of pending questions.
``apply``         ``ApplyParams`` / ``apply_votes``: votes_no / no_consensus / p_yes / labels.
``stage``         the ``votes`` recipe stage: export and wait, then apply.
``server``        ``imgnet votes serve``: the labeling page (Starlette + uvicorn; ``static/``).
``simulate``      simulated crowds with known truth (tests, benchmark).

crowd-kit, pandas, starlette and uvicorn are imported only inside the functions that use them.
"""
