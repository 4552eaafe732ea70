"""Near-duplicate search over many hashes, clusters, keep policy.

``run``     the dedup stage (``DedupParams``, ``dedup``, ``outputs_complete``): hashes the manifest,
            clusters exact and near duplicates, applies the keep policy, writes the reports.
``search``  multi-index hashing over 64-bit hashes (no all-pairs comparison) and a vectorised
            union-find for clusters; numpy only.
"""
