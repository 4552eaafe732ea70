"""Loaders over a shard directory (docs/CONTRACTS.md "Shard directory"), DALI and baseline.

``shardset``  find a split's ``.tar`` shards and their DALI ``.idx`` indexes, check the indexes,
              count the epoch; the class count from ``dataset.json`` when there is one.
``params``    :class:`LoaderParams`: batch, image size, layout, dtype, threads, seed, decoder load.
``augment``   the shared augmentation constants and the PIL half of the baseline's augmentation
              (random-resized-crop as torchvision draws it, flip), and batch normalisation in torch.
``dali``      the DALI pipeline (the only nvidia.dali importer): ``fn.readers.webdataset`` sharded
              per rank, decode ``mixed`` (nvJPEG) on a GPU or ``cpu`` with ``device_id=None``,
              random-resized-crop, flip, normalise; torch tensors through DALI's PyTorch iterator.
``baseline``  the same augmentation with webdataset + PIL + a torch DataLoader with N workers.
``nvjpeg``    batched GPU decode with ``torchvision.io.decode_jpeg(..., device="cuda")`` over the
              shards (read with ``tarfile`` in a thread), then ``tensor_augment`` on the device;
              torchvision imported only when the loader starts.
``tensor_augment``  the same random-resized-crop / flip / normalise on decoded tensors, in plain
              torch on any device (CPU tensors in the tests, CUDA tensors after nvJPEG).
``select``    a loader by name (``dali`` / ``baseline`` / ``nvjpeg``), importing DALI only when it is asked for.
``labels``    ``KEY.cls`` bytes (ASCII decimal, zero-padded by DALI) to int64 labels, in torch.
``check``     :func:`check`: DALI's decoded samples against the baseline reader on the same shards.

DALI has no bfloat16 output type: ``dtype="bf16"`` makes DALI emit fp32 and casts on the device.
Only ``dali`` imports nvidia.dali; ``dali`` and ``baseline`` import torch at the top and are
themselves imported inside functions, so the CLI stays light.
"""
