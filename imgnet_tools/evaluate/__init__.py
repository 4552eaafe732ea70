"""Scoring predictions: the metrics (one module for eval, train and predict), inputs, ground truth.

``metrics``      top-1 / top-5 accuracy and error, per-class accuracy, most-confused pairs,
                 hierarchical error, ReaL accuracy, over aligned numpy arrays (no I/O).
``hierarchy``    the synset DAG of ``imgnet synsets build`` (or ImageNet's ``wordnet.is_a.txt``)
                 restricted to the classes and their ancestors; lowest-common-ancestor heights.
``predictions``  read predictions (our Parquet table, CSV/TSV wide form, the ILSVRC devkit
                 submission format) and write them (what ``imgnet predict`` produces).
``truth``        ground truth and the class list, from a pool or shard manifest or a devkit file.
``devkit``       the devkit's ILSVRC2012_ID numbering (a shipped table) and validation numbers.
``run``          ``EvalParams`` / ``evaluate`` / ``outputs_complete``: line everything up, count
                 every mismatch, score, and write ``schemas/eval_report.schema.json`` documents.

numpy and pyarrow are imported inside functions, so ``imgnet eval --help`` stays light.
"""
