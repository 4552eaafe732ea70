"""``imgnet gpu-check --out DIR``: every GPU figure in one short run (``--dry-run``: the same on the CPU, tiny)."""

from __future__ import annotations

from typing import Any

import click

from imgnet_tools.cli.options import emit_json, json_option, note, overwrite_option, quiet_option
from imgnet_tools.errors import InputError


@click.command("gpu-check")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for gpu_check.json, summary.txt, data/.")
@click.option("--dry-run", is_flag=True, help="Every step with tiny sizes on the CPU (what `make test` runs).")
@click.option("--images", type=click.IntRange(min=1), default=4096, show_default=True, help="Generated 500x375 JPEGs.")
@click.option("--image-size", type=click.IntRange(min=32), default=224, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=30, show_default=True, help="Timed steps per repeat.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Loader workers/threads (default: cores - 1).")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=420.0, show_default=True,
              help="Seconds for all steps; later steps are skipped (and say so) once it is spent.")
@click.option("--compile/--no-compile", "compile_", default=True, show_default=True, help="Also time torch.compile.")
@click.option("--model", type=click.Choice(["alexnet2012", "alexnet", "lenet5"]), default=None,
              help="Model for the model and e2e steps (default: alexnet2012; lenet5 in a dry run).")
@overwrite_option
@json_option
@quiet_option
def gpu_check(out: str, compile_: bool, as_json: bool, quiet: bool, **options: Any) -> None:
    """Record the GPU figures in one run: shards from generated images, each loader alone (nvjpeg,
    DALI when importable, the PIL baseline) and nvJPEG's decode-only ceiling, AlexNet model-only
    (fp32/bf16/fp16, NCHW/channels-last, eager/torch.compile) and end to end, checked against the goals.

    \b
    Needs only PyTorch, torchvision, pyarrow, Pillow, click (scripts/gpu_bench.sh sets up a bare host):
      imgnet gpu-check --out bench-out/gpu-check
      imgnet gpu-check --out /tmp/rehearsal --dry-run
    The summary table goes to stdout; gpu_check.json and summary.txt to --out.
    """
    from imgnet_tools.bench.gpucheck import GpuCheckParams
    from imgnet_tools.bench.gpucheck import gpu_check as run_check

    try:
        params = GpuCheckParams(out=out, compile=compile_, **options)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    result = run_check(params, log=None if quiet else note)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(result.summary, nl=False)
    note(f"report: {result.json_path}")
