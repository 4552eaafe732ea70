"""``imgnet bench``: AlexNet throughput on a shard directory (loader, model, end to end)."""

from __future__ import annotations

import click

from imgnet_tools.bench.params import LOADER_CHOICES, MODEL_CHOICES, MODES, BenchParams
from imgnet_tools.cli.options import emit_json, json_option, note, overwrite_option, progress_bar, quiet_option
from imgnet_tools.errors import InputError


@click.command()
@click.argument("shards", type=click.Path(file_okay=False, path_type=str))
@click.option("--gpus", type=click.IntRange(min=0), default=1, show_default=True,
              help="GPUs, one DDP process each (NCCL). 0 runs on the CPU with gloo, see --procs.")
@click.option("--procs", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU processes for --gpus 0 (how CI exercises DDP).")
@click.option("--mode", type=click.Choice(MODES), default="all", show_default=True,
              help="loader only, model on synthetic device data, e2e (loader feeding training), or all three.")
@click.option("--model", type=click.Choice(MODEL_CHOICES), default="alexnet2012", show_default=True,
              help="alexnet2012: the paper's two towers (grouped convs, LRN, 61.0M); alexnet: single tower (61.1M); "
                   "lenet5: LeCun et al. 1998 (62k at 10 classes; use --image-size 32).")
@click.option("--loader", type=click.Choice(LOADER_CHOICES), default="both", show_default=True,
              help="DALI, the webdataset + PIL + DataLoader baseline, nvjpeg (torchvision GPU decode), "
                   "both (dali and baseline) or all three side by side.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True, help="Images per device per step.")
@click.option("--image-size", type=click.IntRange(min=32), default=224, show_default=True,
              help="Crop size. Below 224 (e.g. 64) is the reduced-resolution setting for CPU runs and CI; "
                   "AlexNet needs >= 63, LeNet-5 runs at 32.")
@click.option("--steps", type=click.IntRange(min=1), default=50, show_default=True, help="Timed steps per repeat.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed steps first.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Timed repeats (median reported).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="DALI threads and DataLoader workers per process (default: cores / processes).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads per process (default: cores / processes).")
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True,
              help="Loader output dtype (training itself runs under bf16 autocast on a GPU).")
@click.option("--layout", type=click.Choice(["NCHW", "NHWC"]), default="NCHW", show_default=True,
              help="Loader output layout; NHWC feeds channels_last without a copy.")
@click.option("--compile", "compile_", is_flag=True, help="Wrap the DDP model in torch.compile.")
@click.option("--hw-decoder-load", type=click.FloatRange(0.0, 1.0), default=0.65, show_default=True,
              help="Share of JPEGs DALI sends to the hardware JPEG decoder (A100/H100).")
@click.option("--shuffle-buffer", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Shuffle buffer per reader (DALI initial_fill).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for shuffling, augmentation and weights.")
@click.option("--split", default="train", show_default=True, help="Which split's shards to read.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=str), default=None, help="Write the report here (JSON).")
@overwrite_option
@json_option
@quiet_option
def bench(shards: str, compile_: bool, as_json: bool, quiet: bool, **options: object) -> None:
    """AlexNet throughput benchmark on the shards in SHARDS: where does the pipeline lose time?

    \b
    Times the loader alone, the model alone on synthetic data on the device, and the loader
    feeding training (DDP), then says which one limits end-to-end throughput.
      imgnet bench shards/ --gpus 8
      imgnet bench shards/ --gpus 0 --procs 2 --image-size 64 --batch-size 16 --steps 5
    A table goes to stderr; --json prints the report, --out writes it.
    """
    from imgnet_tools.bench.report import format_table
    from imgnet_tools.bench.run import bench as run_bench

    try:
        params = BenchParams(shards=shards, compile=compile_, **options)  # type: ignore[arg-type]
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    with progress_bar("bench", 1, quiet) as progress:
        result = run_bench(params, progress)
    note(format_table(result.report))
    if result.out:
        note(f"report written to {result.out}")
    if as_json:
        emit_json(result.to_dict())
