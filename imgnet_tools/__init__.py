"""imgnet: an ImageNet-style dataset toolkit and sharded preprocessing pipeline.

The map (keep it true; ``tests/test_architecture.py`` checks that every package is listed):

``errors``     ImgnetError and subclasses; messages say how to fix the problem.
``places``     where imgnet keeps things (cache folder, default WordNet folder); set by the CLI from
               the environment, which library code never reads.
``cli``        click only: one module per command group; parse, call one library function, print.
               ``cli.main.LAZY_COMMANDS`` maps command names to modules imported on use.
``synsets``    WordNet 3.0 access (``synsets.wordnet``, the only nltk importer; set-up apart in
               ``synsets.setup``), the noun graph, scopes, class lists and presets
               (``synsets.classlists``), ImageNet-format exports.
``images``     one image at a time: sniff, decode, verify, fix; content and perceptual hashes; pixels
               (orientation, RGB policy, JPEG encoding) only in ``images.codec``; the scan and
               verify stages.
``collect``    download URL lists (fall11_urls.txt, CSV/Parquet/JSONL) into a content-addressed folder
               and a manifest verify/dedup/shard take; resumable, chunked over the executors.
``dedup``      near-duplicate search over many hashes, clusters, keep policy.
``shards``     shard plan, deterministic tar writer and reader, DALI index, shard checks.
``manifest``   schemas read from ``schemas/``, atomic writes, Parquet I/O, format versions; streamed
               reads and writes in chunks (``manifest.stream``), a stage's committed chunks
               (``manifest.parts``), compact key sets (``manifest.hashset``).
``execute``    run tasks on the local process pool (default) or Ray (only ray importer), and the
               chunked-stage skeleton every stage uses (``execute.chunked``: per-row errors, crashed
               and timed-out items, resume at chunk granularity).
``loader``     DALI pipeline (only nvidia.dali importer) and the plain PyTorch baseline loader.
``bench``      AlexNet (2012 two-tower and single-tower), DDP runner, timing, report.
``recipes``    load, validate and run ``pipelines/*.yaml``; the stage registry recipes call.
``evaluate``   scoring predictions: ``evaluate.metrics`` (top-1/top-5, per class, confusions,
               hierarchical error, ReaL; used by eval, train and predict), predictions files (our
               table, CSV, the ILSVRC devkit format), ground truth, ``imgnet eval``.
``train``      ``imgnet train`` (LeNet-5 / AlexNet on the loaders, resumable atomic checkpoints,
               loss/accuracy curve) and ``imgnet predict`` (ranked top-5 per key).
``report``     ``report.html`` (self-contained) and PNG figures for a run directory.
``demo``       the deterministic mini-ImageNet with planted faults (``imgnet demo-data``, recipe stage
               ``demo``: ``pipelines/demo.yaml`` makes its own input).
``votes``      human verification: crowd votes (MTurk, Label Studio, our labeling page) -> consensus
               (crowd-kit; Dawid-Skene by default), ImageNet's adaptive rounds, applied to the manifest.

Import rule: ``cli`` may import every library package; no library package imports ``cli`` or
``click``. Heavy dependencies (nltk, pyarrow, torch, nvidia.dali, ray) are imported inside the
functions that need them, so ``imgnet --help`` loads none of them.

Artifacts: every file a stage writes is declared in ``schemas/`` (shipped inside the package as
``imgnet_tools/_schemas`` by ``setup.py``) and carries a ``format_version`` (text files in
ImageNet's own formats carry it in the build record beside them).
"""

__version__ = "0.1.0"
