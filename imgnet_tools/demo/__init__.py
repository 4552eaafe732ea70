"""The built-in demo: a deterministic mini-ImageNet with planted faults (``demo.data``), the
``demo`` recipe stage and ``imgnet demo-data``, so ``pipelines/demo.yaml`` makes its own input."""
