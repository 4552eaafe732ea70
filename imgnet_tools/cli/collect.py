"""``imgnet collect URLS... --out DIR``: download URL lists into a content-addressed folder and a manifest."""

from __future__ import annotations

import click

from imgnet_tools.cli.options import (
    chunk_rows_option,
    counts_bar,
    default,
    echo_counts,
    emit_json,
    executor_options,
    json_option,
    overwrite_option,
    quiet_option,
)
from imgnet_tools.collect.run import (
    PER_WORKER_CONCURRENCY,
    PER_WORKER_PER_HOST,
    RETRY_REASONS,
    CollectParams,
)


def _d(name: str) -> object:
    return default(CollectParams, name)


@click.command("collect")
@click.argument("urls", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the images (ab/cd/<sha256>.<ext>) and manifest.parquet.")
@click.option("--classes", type=click.Path(exists=True, dir_okay=False),
              help="Class list: classes.tsv from `imgnet synsets build`, or one wnid per line.")
@click.option("--preset", type=click.Choice(["ilsvrc2012", "imagenet21k"]), help="Use a preset class list.")
@click.option("--split", default=_d("split"), show_default=True, help="Split of rows whose list has no split column.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help=f"Requests in flight, in all (default: {PER_WORKER_CONCURRENCY} per worker process).")
@click.option("--per-host", type=click.IntRange(min=0), default=None,
              help=f"Connections to one host, in all (default: {PER_WORKER_PER_HOST} per worker process; 0: no limit).")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=_d("connect_timeout"),
              show_default=True, help="Seconds to wait for a connection.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=_d("timeout"), show_default=True,
              help="Seconds for one whole try of a URL: redirects and body.")
@click.option("--retries", type=click.IntRange(min=0), default=_d("retries"), show_default=True,
              help="Tries after the first for 429, 5xx and connection resets (exponential backoff, jitter).")
@click.option("--max-retry-wait", type=click.FloatRange(min=0), default=_d("max_retry_wait"), show_default=True,
              help="Longest Retry-After (seconds) to wait for; a longer one ends the URL's tries.")
@click.option("--max-redirects", type=click.IntRange(min=0), default=_d("max_redirects"), show_default=True,
              help="Redirects to follow per URL.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=_d("max_bytes"), show_default=True,
              help="Largest body to keep; a larger one is cut off while it streams (too_large).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=_d("max_pixels"), show_default=True,
              help="Decompression-bomb limit from the image header (bomb); nothing is decoded.")
@click.option("--ignore-opt-out", is_flag=True,
              help="Fetch images whose X-Robots-Tag says noai/noimageai/noindex (recorded in the run's params).")
@click.option("--allow-private-hosts", is_flag=True,
              help="Allow hosts on loopback, link-local and private addresses (refused by default).")
@click.option("--allow-host", multiple=True, metavar="HOST[:PORT]",
              help="Allow this one private host (repeatable), e.g. a mirror at 10.0.0.5:8080.")
@click.option("--user-agent", default=_d("user_agent"), show_default=True, help="User-Agent header to send.")
@click.option("--retry", multiple=True, type=click.Choice(RETRY_REASONS),
              help="Fetch again the rows an earlier run rejected for this reason (repeatable), e.g. --retry timeout.")
@chunk_rows_option
@executor_options
@overwrite_option
@quiet_option
@json_option
def collect(urls: tuple[str, ...], allow_host: tuple[str, ...], retry: tuple[str, ...], quiet: bool, as_json: bool,
            **options: object) -> None:
    """Download every URL of the lists into DIR and write DIR/manifest.parquet for verify, dedup and shard.

    \b
    Lists: CSV/TSV/Parquet/JSONL with url and wnid or label (optional split, caption),
    or ImageNet's fall11_urls.txt (id<TAB>url). Examples:
      imgnet collect fall11_urls.txt --preset imagenet21k --out web/
      imgnet collect urls.parquet --classes synsets/classes.tsv --out web/ --concurrency 512

    Only http/https; hosts on private networks are refused; X-Robots-Tag opt-outs are honoured.
    Every failure is a rejected row with a reason. Work is committed in chunks of --chunk-rows
    URLs (default 1000): a killed run resumes; a re-run does nothing.
    """
    from imgnet_tools.collect.run import collect as run_collect

    params = CollectParams(urls=urls, allow_host=allow_host, retry=retry, **options)  # type: ignore[arg-type]
    with counts_bar("collect", quiet) as show:
        result = run_collect(params, tally=show)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"{result.manifest}: {result.rows} rows in {result.chunks} chunks ({result.chunks_run} run now, "
               f"{result.tried} URLs tried, {result.stored_bytes} bytes stored), {result.classes} classes")
    echo_counts("status", result.status)
    echo_counts("reasons", result.reasons)
