"""`imgnet synsets` through click's runner and through the installed console script.

The ILSVRC-2012 preset is built once per module through the CLI; show and stats answer from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgnet_tools.cli.main import cli
from imgnet_tools.synsets import classlists
from imgnet_tools.synsets.formats import read_classes, read_synsets
from tests.conftest import run_installed


def _run(*args: object) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def ilsvrc_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "ilsvrc2012"
    result = _run("synsets", "build", "--preset", "ilsvrc2012", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["classes"] == 1000 and doc["classes_multi_path"] == 304
    return out


def test_ilsvrc_preset_yields_1000_classes_in_reference_order(ilsvrc_dir) -> None:
    reference = classlists.preset("ilsvrc2012")
    rows = read_classes(ilsvrc_dir / "classes.tsv")
    assert [w for _, w, _ in rows] == list(reference.wnids)
    assert [n for _, _, n in rows] == [reference.words[w] for w in reference.wnids]  # ImageNet's published names
    assert rows[0] == (0, "n01440764", "tench, Tinca tinca")


def test_ilsvrc_build_marks_classes_multi_paths_and_duplicate_names(ilsvrc_dir) -> None:
    t = read_synsets(ilsvrc_dir / "synsets.parquet").to_pydict()
    classes = [i for i, c in enumerate(t["is_class"]) if c]
    assert len(classes) == 1000
    assert sum(t["num_paths"][i] > 1 for i in classes) == 304  # more than one path to the root
    assert all(t["is_leaf"][i] for i in classes)  # no ILSVRC class is an ancestor of another
    assert "n00001740" in t["wnid"] and all(p in t["wnid"] for ps in t["parents"] for p in ps)
    dups = sorted(t["wnid"][i] for i in classes if t["class_name_duplicate"][i])
    assert dups == ["n02012849", "n03126707", "n03710637", "n03710721"]  # crane x2, maillot x2
    record = json.loads((ilsvrc_dir / "build.json").read_text())
    assert [d["name"] for d in record["summary"]["duplicate_names"]] == ["crane", "maillot"]


def test_build_summary_on_stdout_flags_duplicates(ilsvrc_dir, tmp_path) -> None:
    listed = tmp_path / "two_cranes__wnids.txt"
    listed.write_text("n02012849\nn03126707\n")
    result = _run("synsets", "build", "--wnids", listed, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "classes 2" in result.stdout and "duplicate class name 'crane'" in result.stdout
    assert read_classes(tmp_path / "out" / "classes.tsv") == [(0, "n02012849", "crane"), (1, "n03126707", "crane")]


def test_show_by_wnid_from_a_built_folder_never_loads_wordnet(ilsvrc_dir) -> None:
    """--from answers from synsets.parquet alone (why it is fast): with WordNet pointed at a
    folder that does not exist, in a fresh interpreter, it still answers and nltk stays unloaded."""
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from imgnet_tools.cli.main import cli\n"
        f"r = CliRunner().invoke(cli, ['synsets', 'show', 'n02012849', '--from', {str(ilsvrc_dir)!r}])\n"
        "print(r.output)\n"
        "print('nltk loaded:', 'nltk' in sys.modules)\n"
        "sys.exit(r.exit_code)\n"
    )
    env = {**os.environ, "IMGNET_WORDNET_DIR": str(ilsvrc_dir / "no-wordnet-here")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "class 134: crane" in out.stdout
    assert "entity > physical entity > object" in out.stdout and "wading bird > crane" in out.stdout
    assert "nltk loaded: False" in out.stdout


def test_show_word_lists_every_noun_sense_as_json(ilsvrc_dir) -> None:
    result = _run("synsets", "show", "crane", "--from", ilsvrc_dir, "--json")
    doc = json.loads(result.stdout)
    assert [m["wnid"] for m in doc["matches"]] == ["n02012849", "n03126707"]  # the senses kept in this build
    machine = doc["matches"][1]
    assert machine["paths"][0][0] == "n00001740" and machine["paths"][0][-1] == "n03126707"


def test_show_reads_wordnet_without_from() -> None:
    result = _run("synsets", "show", "golden_retriever", "--json")
    doc = json.loads(result.stdout)
    [match] = doc["matches"]
    assert match["wnid"] == "n02099601" and match["class_index"] is None
    assert {"wnid": "n02099601", "name": "golden retriever"} not in match["children"]
    assert match["path_names"][0][-2:] == ["retriever", "golden retriever"]


def test_show_unknown_word_is_an_error(ilsvrc_dir) -> None:
    result = _run("synsets", "show", "no such thing at all", "--from", ilsvrc_dir)
    assert result.exit_code == 2 and "Error: no noun synset matches" in result.output


def test_stats_prints_depth_and_fanout_distributions(ilsvrc_dir) -> None:
    text = _run("synsets", "stats", "--from", ilsvrc_dir)
    assert text.exit_code == 0 and "depth (min) histogram" in text.stdout and "fan-out" in text.stdout
    doc = json.loads(_run("synsets", "stats", "--from", ilsvrc_dir, "--json").stdout)
    assert doc["classes"] == 1000 and doc["leaves"] == 1000 and doc["multi_path"] >= 304
    assert sum(doc["depth_min_histogram"].values()) == doc["synsets"]
    assert sum(doc["fanout_histogram"].values()) == doc["synsets"] - doc["leaves"]


def test_existing_output_is_refused_with_exit_2(ilsvrc_dir) -> None:
    result = _run("synsets", "build", "--preset", "ilsvrc2012", "--out", ilsvrc_dir)
    assert result.exit_code == 2 and "--overwrite" in result.output


@pytest.mark.parametrize("args, message", [
    (["--scope", "all", "--preset", "ilsvrc2012"], "exclude each other"),
    (["--skip-unknown"], "--skip-unknown applies to"),
    (["--scope", "trees"], "Invalid value for '--scope'"),
])
def test_usage_errors_exit_2(tmp_path, args, message) -> None:
    result = _run("synsets", "build", "--out", tmp_path / "o", *args)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize("content, line_message", [
    ("n02084071\nn0208407\n", "line 2: 'n0208407' is not a wnid"),
    ("n02084071\nN02012849\n", "line 2: 'N02012849' is not a wnid"),
    ("n02084071\n\nn02084071\tdog\n", "line 3: n02084071 repeats line 1"),
])
def test_bad_class_list_names_the_line(tmp_path, content, line_message) -> None:
    listed = tmp_path / "bad__wnids.txt"
    listed.write_text(content)
    result = _run("synsets", "build", "--wnids", listed, "--out", tmp_path / "o")
    assert result.exit_code == 2 and line_message in result.output and str(listed) in result.output
    assert not (tmp_path / "o").exists()


def test_unknown_wnid_names_the_line(tmp_path) -> None:
    listed = tmp_path / "unknown_on_line_2__wnids.txt"
    listed.write_text("n02084071 dog\nn99999999 not a noun\nn04399382 teddy\n")
    result = _run("synsets", "build", "--wnids", listed, "--out", tmp_path / "strict")
    assert result.exit_code == 2 and "line 2: n99999999 is not a WordNet 3.0 noun" in result.output
    assert not (tmp_path / "strict").exists()


def test_installed_imgnet_builds_a_list_skipping_unknown_wnids(tmp_path) -> None:
    listed = tmp_path / "unknown_on_line_2__wnids.txt"
    listed.write_text("n02084071 dog\nn99999999 not a noun\nn04399382 teddy\n")
    done = run_installed("synsets", "build", "--wnids", str(listed), "--skip-unknown", "--out", str(tmp_path / "o"), "--json")
    assert done.returncode == 0, done.stderr
    assert "skipped line 2: n99999999" in done.stderr
    assert json.loads(done.stdout)["skipped_unknown"] == [{"line": 2, "wnid": "n99999999"}]
    assert read_classes(tmp_path / "o" / "classes.tsv") == [(0, "n02084071", "dog, domestic dog, Canis familiaris"),
                                                            (1, "n04399382", "teddy, teddy bear")]
    shown = run_installed("synsets", "show", "teddy bear", "--from", str(tmp_path / "o"))
    assert shown.returncode == 0 and "class 1: teddy, teddy bear" in shown.stdout


def test_installed_setup_wordnet_into_a_target_offline(tmp_path) -> None:
    target = tmp_path / "nltk_data"
    first = run_installed("synsets", "setup-wordnet", "--target", str(target), "--no-download", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["action"] == "staged"
    again = run_installed("synsets", "setup-wordnet", "--target", str(target), "--no-download")
    assert again.returncode == 0 and "already available" in again.stdout


def test_missing_wordnet_is_an_error_saying_how_to_get_it(tmp_path) -> None:
    (tmp_path / "empty__no_wordnet").mkdir()
    result = _run("synsets", "build", "--out", tmp_path / "o", "--wordnet-dir", tmp_path / "empty__no_wordnet")
    assert result.exit_code == 1
    assert "holds no WordNet dict files" in result.output and "imgnet synsets setup-wordnet" in result.output
