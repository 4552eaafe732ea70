"""Run many independent tasks: a local process pool (default) or a Ray cluster.

Tasks are plain picklable callables with picklable arguments; results come back in task order, so
the output does not depend on which executor ran them. :mod:`.ray_executor` is the only module
that imports ray.
"""
