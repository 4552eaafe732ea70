"""AlexNet throughput benchmark: models, DDP runner, timing and the report.

``alexnet``  the 2012 two-tower AlexNet (grouped convolutions, LRN, 60.97M parameters) and the
             single-tower variant (torchvision layout, 61.1M parameters).
``params``   :class:`BenchParams` (field names are the ``imgnet bench`` option names) and validation.
``run``      :func:`bench`, the stage entry point: checks the request, launches one process per GPU
             (or ``procs`` CPU processes with gloo), collects the per-rank timings, writes the report.
``worker``   what one rank does: build loaders and the DDP model, time loader / model / end to end.
``timing``   warm-up, device synchronisation and median-of-repeats for timed regions.
``report``   the report document (``schemas/bench_report.schema.json``), the verdict and the table.

torch is imported only by ``alexnet``, ``worker`` and ``timing``, which ``run`` imports inside
functions, so that ``imgnet bench --help`` stays light.
"""
