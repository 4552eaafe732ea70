"""``imgnet synsets``: build, show, stats, setup-wordnet (thin: parse, call one function, print)."""

from __future__ import annotations

from typing import Any

import click

from imgnet_tools.cli.options import (
    emit_json,
    json_option,
    note,
    overwrite_option,
    progress_bar,
    quiet_option,
)
from imgnet_tools.synsets.classlists import PRESET_NAMES

wordnet_dir_option = click.option(
    "--wordnet-dir", type=click.Path(file_okay=False), envvar="IMGNET_WORDNET_DIR", show_envvar=True, default=None,
    help="Folder of WordNet 3.0 dict files (data.noun, index.noun, ...). Default: nltk's data path, "
         "then /usr/share/wordnet.",
)
allow_other_option = click.option(
    "--allow-other-wordnet", is_flag=True, help="Accept a WordNet other than 3.0 (ImageNet ids are 3.0 offsets)."
)
from_option = click.option(
    "--from", "from_dir", type=click.Path(file_okay=False, exists=True), default=None,
    help="Answer from a built folder (its synsets.parquet) instead of reading WordNet.",
)


@click.group()
def synsets() -> None:
    """WordNet 3.0 synset trees: build, show, stats."""


@synsets.command()
@click.option("--out", required=True, type=click.Path(), help="Output folder (refused if not empty, unless --overwrite).")
@click.option("--scope", type=click.Choice(["all", "physical"]), default=None,
              help="all: every noun (82,115); physical: countable physical things (see README). Default: all.")
@click.option("--wnids", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Class list: one wnid per line (first field); builds the classes plus their ancestors.")
@click.option("--preset", type=click.Choice(PRESET_NAMES), default=None,
              help="A shipped class list: ILSVRC-2012 (1,000) or ImageNet-21k fall11 (21,841).")
@click.option("--skip-unknown", is_flag=True, help="Leave out listed wnids that are not WordNet 3.0 nouns (reported).")
@overwrite_option
@wordnet_dir_option
@allow_other_option
@json_option
@quiet_option
def build(out: str, scope: str | None, wnids: str | None, preset: str | None, skip_unknown: bool, overwrite: bool,
          wordnet_dir: str | None, allow_other_wordnet: bool, as_json: bool, quiet: bool) -> None:
    """Build synsets.parquet, words.txt, wordnet.is_a.txt, gloss.txt, tree.json (and classes.tsv).

    \b
    Examples:
      imgnet synsets build --out synsets-all/
      imgnet synsets build --preset ilsvrc2012 --out synsets-1k/
      imgnet synsets build --wnids my_classes.txt --skip-unknown --out synsets-mine/
    """
    from imgnet_tools.errors import InputError
    from imgnet_tools.synsets.build import STEPS, BuildParams, build_synsets

    params = BuildParams(out=out, scope=scope, wnids=wnids, preset=preset, skip_unknown=skip_unknown,
                         overwrite=overwrite, wordnet_dir=wordnet_dir, allow_other_wordnet=allow_other_wordnet)
    try:
        params.validate()
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    with progress_bar("synsets", STEPS, quiet) as tick:
        result = build_synsets(params, progress=tick)
    for item in result.skipped_unknown:
        note(f"skipped line {item['line']}: {item['wnid']} is not a WordNet 3.0 noun")
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(_build_summary(result.to_dict()))


def _build_summary(r: dict[str, Any]) -> str:
    lines = [
        (f"built {r['synsets']:,} synsets (scope {r['scope']}) into {r['out']} from WordNet "
         f"{r['wordnet']['version']} ({r['wordnet']['source']}: {r['wordnet']['path']}) in {r['seconds']:.1f} s"),
        (f"  is-a pairs {r['is_a_pairs']:,}, is-a roots {r['is_a_roots']}, multi-parent {r['multi_parent']:,}, "
         f"leaves {r['leaves']:,}, max depth {r['max_depth']}"),
    ]
    if r["classes"]:
        lines.append(f"  classes {r['classes']:,}, with more than one path to the root {r['classes_multi_path']:,}")
    for dup in r["duplicate_names"][:10]:
        lines.append(f"  duplicate class name {dup['name']!r}: {', '.join(dup['wnids'])}")
    if len(r["duplicate_names"]) > 10:
        lines.append(f"  ... {len(r['duplicate_names']) - 10} more duplicate class names (see build.json)")
    if r["skipped_unknown"]:
        lines.append(f"  skipped unknown wnids {len(r['skipped_unknown'])}")
    lines.append(f"  files: {' '.join(r['files'])}")
    return "\n".join(lines)


@synsets.command()
@click.argument("query")
@from_option
@wordnet_dir_option
@allow_other_option
@json_option
def show(query: str, from_dir: str | None, wordnet_dir: str | None, allow_other_wordnet: bool, as_json: bool) -> None:
    """Show a synset by WNID or every noun sense of a WORD: gloss, paths to the root, children.

    \b
    Examples:
      imgnet synsets show n02012849 --from synsets-all/
      imgnet synsets show "golden retriever" --from synsets-all/
    """
    from imgnet_tools.synsets.query import ShowParams, Source
    from imgnet_tools.synsets.query import show as show_synsets

    result = show_synsets(ShowParams(query, Source(from_dir, wordnet_dir, allow_other_wordnet)))
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo("\n\n".join(_show_text(m) for m in result.matches))


def _show_text(m: dict[str, Any]) -> str:
    head = f"{m['wnid']}  {', '.join(m['lemmas'])}  ({m['lexname']})"
    if m["class_index"] is not None:
        head += f"  class {m['class_index']}: {m['class_name']}"
    lines = [head, f"  {m['gloss']}",
             (f"  depth {m['depth_min']}..{m['depth_max']}, descendants {m['num_descendants']:,}, "
              f"paths to the root {m['num_paths']}")]
    for names in m["path_names"]:
        lines.append("  " + " > ".join(names))
    kids = m["children"]
    shown = ", ".join(f"{c['wnid']} {c['name']}" for c in kids[:20])
    more = f", ... {len(kids) - 20} more" if len(kids) > 20 else ""
    lines.append(f"  children ({len(kids)}): {shown}{more}" if kids else "  children: none (a leaf)")
    return "\n".join(lines)


@synsets.command()
@from_option
@wordnet_dir_option
@allow_other_option
@json_option
def stats(from_dir: str | None, wordnet_dir: str | None, allow_other_wordnet: bool, as_json: bool) -> None:
    """Print depth and fan-out distributions, leaves and multi-parent counts.

    \b
    Example:
      imgnet synsets stats --from synsets-all/
    """
    from imgnet_tools.synsets.query import Source
    from imgnet_tools.synsets.query import stats as synset_stats

    result = synset_stats(Source(from_dir, wordnet_dir, allow_other_wordnet))
    if as_json:
        emit_json(result.to_dict())
        return
    r = result.to_dict()
    lines = [(f"synsets {r['synsets']:,}, is-a pairs {r['is_a_pairs']:,}, multi-parent {r['multi_parent']:,}, "
              f"more than one path to the root {r['multi_path']:,}, leaves {r['leaves']:,}, classes {r['classes']:,}"),
             "depth (min) histogram:"]
    top = max(r["depth_min_histogram"].values())
    for depth, n in r["depth_min_histogram"].items():
        lines.append(f"  {depth:>3} {n:>7,} {'#' * max(1, round(40 * n / top))}")
    lines.append(f"fan-out (children per non-leaf): mean {r['fanout_mean']}, median {r['fanout_median']}, "
                 f"max {r['fanout_max']['children']} ({r['fanout_max']['wnid']} {r['fanout_max']['name']})")
    bins = list(result.fanout_bins())
    top = max(n for _, n in bins) or 1
    for label, n in bins:
        lines.append(f"  {label:>6} {n:>7,} {'#' * (round(40 * n / top) if n else 0)}")
    click.echo("\n".join(lines))


@synsets.command("setup-wordnet")
@click.option("--target", type=click.Path(file_okay=False), default=None,
              help="nltk data folder to install into (default: <venv>/nltk_data, on nltk's path).")
@click.option("--wordnet-dir", type=click.Path(file_okay=False), envvar="IMGNET_WORDNET_DIR", default=None,
              help="Copy WordNet from this folder instead of /usr/share/wordnet when nltk's download fails.")
@click.option("--no-download", is_flag=True, help="Do not try nltk.download('wordnet'); copy a system WordNet.")
@json_option
def setup_wordnet(target: str | None, wordnet_dir: str | None, no_download: bool, as_json: bool) -> None:
    """Make WordNet 3.0 available to nltk, offline if need be (idempotent; run by scripts/setup.sh).

    If nltk already finds WordNet 3.0, nothing is done. Else nltk's download is tried (skipped at
    once when offline), else the system copy (apt-get install wordnet-base wordnet-sense-index) is
    copied, with the lexnames file nltk needs, into the target.
    """
    from imgnet_tools.synsets.setup import SetupParams
    from imgnet_tools.synsets.setup import setup_wordnet as do_setup

    result = do_setup(SetupParams(target=target, wordnet_dir=wordnet_dir, download=not no_download), note=note)
    if as_json:
        emit_json(result.to_dict())
        return
    verb = {"found": "already available", "downloaded": "downloaded", "staged": "installed"}[result.action]
    click.echo(f"WordNet {result.version} {verb}: {result.path} (from {result.source})")
