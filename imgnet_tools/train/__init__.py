"""Training and prediction on shards: ``imgnet train`` and ``imgnet predict``.

``step``        one training step (autocast bf16/fp16, channels_last, optional torch.compile, SGD),
                shared with the GPU check in ``bench.gpucheck``.
``loop``        ``TrainParams`` / ``train`` / ``outputs_complete``: epochs over a training loader,
                per-epoch validation, cosine schedule, resumable checkpoints, the run record.
``checkpoint``  the checkpoint file (atomic ``torch.save``, ``weights_only`` load, schema-checked meta).
``evalread``    deterministic evaluation batches (centre crop, every sample once, with its key).
``predict``     ``PredictParams`` / ``predict`` / ``outputs_complete``: ranked top-5 predictions per
                key in the table ``imgnet eval`` scores; ``run_model`` also validates in training.

Metrics come from :mod:`imgnet_tools.evaluate.metrics`; models from :mod:`imgnet_tools.bench.models`.
torch is imported by ``step`` and ``evalread`` at the top and by the others inside functions, so
``imgnet train --help`` stays light.
"""
