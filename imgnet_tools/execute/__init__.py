"""Run many independent tasks: a local process pool (default) or a Ray cluster, and the chunked
stage skeleton every stage is built on.

``params``   :class:`ExecutorParams` (``--executor``, ``--address``, ``--workers``, retries, time
             limit) and core counts; a leaf module.
``pool``     the local pool: one task per worker at a time, so a dead or overdue worker is
             charged to exactly its task and replaced.
``ray_executor``  the same contract on Ray (the only ray importer); the shared-folder check.
``tasks``    :func:`stream_tasks` / :func:`run_tasks`: one front for both, with retries.
``chunked``  the stage skeleton: chunks of work with resumable, committed results; chunks whose
             worker keeps dying are split down to single items, so one bad file costs one row.
"""
