"""Every rule on a stage's parameters holds the same way from the command line and from a recipe.

The rules live in the stages' params dataclasses (``__post_init__``/``validate`` raising
``InputError``); the CLI and ``imgnet run`` both build those dataclasses. For each case the CLI must
exit 2 with one ``Error: ...`` line, and a one-stage recipe with the same parameters must exit 2 with
the same rule's message. (Where click checks a range itself, its CLI message is click's
"Invalid value for '--opt'"; the rule still holds both ways.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

# (case id, the fragment the message must hold, CLI arguments, stage, recipe params); "{t}" is tmp_path.
CASES: list[tuple[str, str, list[str], str, dict[str, Any]]] = [
    ("synsets-exclusive", "exclude each other", ["synsets", "build", "--out", "{t}/o", "--scope", "all", "--preset",
     "ilsvrc2012"], "synsets", {"out": "{t}/o", "scope": "all", "preset": "ilsvrc2012"}),
    ("synsets-skip-unknown", "--skip-unknown applies", ["synsets", "build", "--out", "{t}/o", "--skip-unknown"],
     "synsets", {"out": "{t}/o", "skip_unknown": True}),
    ("scan-val-id-map", "--val-id-map only applies", ["scan", "{t}/src", "--out", "{t}/o", "--val-id-map", "{t}/map.txt"],
     "scan", {"src": ["{t}/src"], "out": "{t}/o", "val_id_map": "{t}/map.txt"}),
    ("scan-address", "--address is only for --executor ray", ["scan", "{t}/src", "--out", "{t}/o", "--address",
     "ray://head:10001"], "scan", {"src": ["{t}/src"], "out": "{t}/o", "address": "ray://head:10001"}),
    ("scan-out-file", "names a folder", ["scan", "{t}/src", "--out", "{t}/m.parquet"], "scan",
     {"src": ["{t}/src"], "out": "{t}/m.parquet"}),
    ("verify-aspect", "--max-aspect must be at least 1.0", ["verify", "{t}/m.parquet", "--max-aspect", "0.5"], "verify",
     {"manifest": "{t}/m.parquet", "max_aspect": 0.5}),
    ("dedup-threshold", "threshold 99 is outside", ["dedup", "{t}/m.parquet", "--threshold", "99"], "dedup",
     {"manifest": "{t}/m.parquet", "threshold": 99}),
    ("shard-prefix", "only {split} may appear in braces", ["shard", "{t}/m.parquet", "--out", "{t}/s", "--prefix", "a{b"],
     "shard", {"manifest": "{t}/m.parquet", "out": "{t}/s", "prefix": "a{b"}),
    ("shard-workers", "--workers must be at least 1", ["shard", "{t}/m.parquet", "--out", "{t}/s", "--workers", "0"],
     "shard", {"manifest": "{t}/m.parquet", "out": "{t}/s", "workers": 0}),
    ("collect-split", "not a usable split name", ["collect", "{t}/urls.csv", "--out", "{t}/c", "--split", "../x"],
     "collect", {"urls": ["{t}/urls.csv"], "out": "{t}/c", "split": "../x"}),
    ("bench-procs", "procs is for CPU runs", ["bench", "{t}/shards", "--gpus", "1", "--procs", "2"], "bench",
     {"shards": "{t}/shards", "gpus": 1, "procs": 2}),
    ("train-epochs", "must be at least 1", ["train", "{t}/shards", "--out", "{t}/ck.pt", "--epochs", "0"], "train",
     {"shards": "{t}/shards", "out": "{t}/ck.pt", "epochs": 0}),
    ("eval-truth", "--manifest MANIFEST or --truth", ["eval", "{t}/preds.csv"], "eval", {"predictions": "{t}/preds.csv"}),
    ("votes-confidence", "--confidence 1.5 must be above 0.5", ["votes", "next", "{t}/m.parquet", "--votes", "{t}/v.parquet",
     "--out", "{t}/b", "--confidence", "1.5"], "votes", {"manifest": "{t}/m.parquet", "votes": "{t}/v.parquet",
                                                          "out": "{t}/b", "confidence": 1.5}),
    ("demo-size", "--size must be between", ["demo-data", "{t}/d", "--size", "10"], "demo", {"out": "{t}/d", "size": 10}),
]


def _fill(value: Any, tmp: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{t}", str(tmp))
    if isinstance(value, list):
        return [_fill(v, tmp) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, tmp) for k, v in value.items()}
    return value


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, output
    return lines[0].removeprefix("Error: ")


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """Files the parameters name (the rules are checked before any of them is read)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "shards").mkdir()
    for name in ("m.parquet", "map.txt", "urls.csv", "preds.csv"):
        (tmp_path / name).write_text("x\n")
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_the_recipe_path_rejects_what_the_cli_rejects(case: tuple[str, str, list[str], str, dict[str, Any]],
                                                     inputs: Path, invoke) -> None:
    _, fragment, args, stage, params = case
    cli = invoke(*_fill(args, inputs))
    assert cli.exit_code == 2, cli.output
    message = _error_line(cli.output)
    option = ([a for a in args if a.startswith("--")] or [""])[-1]  # each case names the offending option last
    assert fragment in message or message.startswith(f"Invalid value for '{option}'"), cli.output
    recipe = inputs / "rules.yaml"
    doc = {"format_version": 1, "name": "rules", "stages": [{"stage": stage, "params": _fill(params, inputs)}]}
    recipe.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    ran = invoke("run", str(recipe))
    assert ran.exit_code == 2, ran.output
    assert fragment in _error_line(ran.output), (cli.output, ran.output)
    if fragment in message:
        assert message in _error_line(ran.output), (cli.output, ran.output)
