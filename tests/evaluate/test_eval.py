"""imgnet eval: hand-computed top-1/top-5 and hierarchical error, the devkit formats, ReaL, mismatches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from imgnet_tools.errors import InputError
from imgnet_tools.evaluate import metrics
from imgnet_tools.evaluate.devkit import id_to_wnid
from imgnet_tools.evaluate.hierarchy import Hierarchy, read_parents
from imgnet_tools.evaluate.predictions import read_predictions, write_predictions
from imgnet_tools.evaluate.run import EvalParams, evaluate
from imgnet_tools.evaluate.truth import from_devkit
from imgnet_tools.manifest.parquet import write_table

# The first ten lines of ILSVRC2012_validation_ground_truth.txt and the wnids LOC_val_solution.csv
# gives ILSVRC2012_val_00000001..10.
FIRST_TEN_IDS = [490, 361, 171, 822, 297, 482, 13, 704, 599, 164]
FIRST_TEN_WNIDS = ["n01751748", "n09193705", "n02105855", "n04263257", "n03125729",
                   "n01735189", "n02346627", "n02776631", "n03794056", "n02328150"]
WNIDS = [f"n0000000{i}" for i in range(1, 8)]  # seven classes, index = position


def _manifest(tmp_path: Path, rows: list[tuple[str, str, int | None, str]], name: str = "manifest.parquet") -> Path:
    """A pool manifest with (key, split, label, status) rows; wnid follows the label."""
    table = pa.table({
        "key": [r[0] for r in rows], "path": [f"/data/{r[0]}.JPEG" for r in rows],
        "source_path": [f"/data/{r[0]}.JPEG" for r in rows], "split": [r[1] for r in rows],
        "label": pa.array([r[2] for r in rows], pa.int32()),
        "wnid": [None if r[2] is None else WNIDS[r[2]] for r in rows], "status": [r[3] for r in rows]})
    return write_table(table, tmp_path / name, "manifest")


def _csv(path: Path, rows: list[list[object]]) -> Path:
    width = max(len(r) for r in rows) - 1
    lines = ["key," + ",".join(f"pred_{i}" for i in range(1, width + 1))]
    lines += [",".join(str(c) for c in r) + "," * (width + 1 - len(r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# metrics by hand


def test_topk_per_class_and_confusions_by_hand() -> None:
    truth = np.array([0, 0, 1, 1, 2, 3])
    guesses = np.array([
        [0, 1, 2, 3, 4],      # top-1 right
        [1, 0, 2, 3, 4],      # right at rank 2: top-5 only
        [0, 2, 3, 4, 5],      # wrong, 1 not among five: confused 1 -> 0
        [0, 2, 3, 4, 1],      # right at rank 5; confused 1 -> 0
        [-1, -1, -1, -1, -1],  # no prediction
        [3, -1, -1, -1, -1],  # one guess, right
    ])
    acc = metrics.topk_accuracy(truth, guesses)
    assert acc[1] == pytest.approx(2 / 6)
    assert acc[5] == pytest.approx(4 / 6)
    rows = {r["index"]: r for r in metrics.per_class(truth, guesses, 5)}
    assert rows[0] == {"index": 0, "images": 2, "top1": 0.5, "top5": 1.0}
    assert rows[1] == {"index": 1, "images": 2, "top1": 0.0, "top5": 0.5}
    assert rows[2]["top5"] == 0.0 and rows[3]["top1"] == 1.0 and 4 not in rows
    assert metrics.confused_pairs(truth, guesses) == [(1, 0, 2), (0, 1, 1)]


def _tree(tmp_path: Path) -> Path:
    """r -> a, b; a -> c1, c2; b -> c3, x; x -> c4. Heights: leaves 0, a 1, x 1, b 2, r 3."""
    r, a, b, x, c1, c2, c3, c4 = ("n00000100", "n00000101", "n00000102", "n00000103",
                                  "n00000001", "n00000002", "n00000003", "n00000004")
    pairs = [(r, a), (r, b), (a, c1), (a, c2), (b, c3), (b, x), (x, c4)]
    path = tmp_path / "wordnet.is_a.txt"
    path.write_text("".join(f"{p} {c}\n" for p, c in pairs))
    return path


def test_hierarchical_error_is_the_lca_height_by_hand(tmp_path: Path) -> None:
    classes = ["n00000001", "n00000002", "n00000003", "n00000004"]  # c1 c2 c3 c4
    h = Hierarchy.build(read_parents(_tree(tmp_path)), classes)
    assert h.max_cost == 3
    assert [h.lca_height(0, 1), h.lca_height(0, 2), h.lca_height(2, 3), h.lca_height(3, 3)] == [1, 3, 2, 0]
    truth = np.array([0, 0, 2, 3])
    guesses = np.array([[1, 2, -1, -1, -1],   # c2 (1), c3 (3): min 1; top-1 1
                        [2, 3, 0, -1, -1],    # 3, 3, right: 0; top-1 3
                        [3, -1, -1, -1, -1],  # c4 vs c3: LCA b, 2
                        [-1, -1, -1, -1, -1]])  # nothing: max cost 3
    assert metrics.hierarchical_costs(truth, guesses, h).tolist() == [1, 0, 2, 3]
    assert metrics.hierarchical_costs(truth, guesses, h, k=1).tolist() == [1, 3, 2, 3]
    scores = metrics.score(truth, guesses, h)
    assert scores.hierarchical_error == pytest.approx(6 / 4)
    assert scores.hierarchical_error_top1 == pytest.approx(9 / 4)


def test_a_class_missing_from_the_graph_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not in"):
        Hierarchy.build(read_parents(_tree(tmp_path)), ["n00000001", "n09999999"])


# ----------------------------------------------------------------------------------------------
# the devkit's numbering


def test_first_ten_validation_ground_truth_ids_map_to_the_right_wnids(tmp_path: Path) -> None:
    table = id_to_wnid()
    assert len(table) == 1000 and sorted(table) == list(range(1, 1001))
    assert [table[i] for i in FIRST_TEN_IDS] == FIRST_TEN_WNIDS
    gt = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    gt.write_text("".join(f"{i}\n" for i in FIRST_TEN_IDS))
    truth = from_devkit(gt)
    assert [truth.classes.wnids[i] for i in truth.labels] == FIRST_TEN_WNIDS
    assert int(truth.labels[0]) == 65  # sea snake: devkit ID 490, sorted class index 65
    assert truth.numbers[:2] == (1, 2)


def test_devkit_submission_against_devkit_ground_truth(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{i}\n" for i in FIRST_TEN_IDS))
    lines = []
    for n, right in enumerate(FIRST_TEN_IDS):
        wrong = [x for x in (1, 2, 3, 4, 5, 6) if x != right]
        if n < 4:
            lines.append([right, *wrong[:4]])      # top-1
        elif n < 7:
            lines.append([*wrong[:3], right, wrong[3]])  # rank 4
        else:
            lines.append(wrong[:5])                 # miss
    sub = tmp_path / "submission.txt"
    sub.write_text("".join(" ".join(map(str, r)) + "\n" for r in lines))
    doc = evaluate(EvalParams(predictions=str(sub), truth=str(gt))).report
    assert doc["predictions"]["kind"] == "devkit_id"
    assert doc["metrics"]["top1_accuracy"] == pytest.approx(0.4)
    assert doc["metrics"]["top5_accuracy"] == pytest.approx(0.7)
    assert doc["metrics"]["top5_error"] == pytest.approx(0.3)
    assert doc["counts"]["scored"] == 10 and doc["counts"]["missing"] == 0


def test_devkit_submission_against_a_manifest_of_ilsvrc_val_files(tmp_path: Path) -> None:
    """Lines are validation images by number: a manifest missing image 2 leaves line 2 unscored."""
    ilsvrc = sorted(id_to_wnid().values())
    keys = [f"val-ILSVRC2012_val_{n:08d}" for n in (1, 3, 4)]
    labels = [ilsvrc.index(FIRST_TEN_WNIDS[n - 1]) for n in (1, 3, 4)]
    table = pa.table({"key": keys, "path": [f"/v/{k[4:]}.JPEG" for k in keys], "source_path": [f"/v/{k[4:]}.JPEG" for k in keys],
                      "split": ["val"] * 3, "label": pa.array(labels, pa.int32()),
                      "wnid": [ilsvrc[i] for i in labels], "status": ["ok"] * 3})
    manifest = write_table(table, tmp_path / "manifest.parquet", "manifest")
    classes = tmp_path / "wnids.txt"
    classes.write_text("\n".join(ilsvrc) + "\n")
    sub = tmp_path / "sub.txt"
    sub.write_text("".join(f"{i} 1 2 3 4\n" for i in FIRST_TEN_IDS[:4]))  # every line right at top-1
    with pytest.raises(InputError, match="line 2"):
        evaluate(EvalParams(predictions=str(sub), manifest=str(manifest), classes=str(classes)))
    doc = evaluate(EvalParams(predictions=str(sub), manifest=str(manifest), classes=str(classes),
                              skip_unknown=True)).report
    assert doc["metrics"]["top1_accuracy"] == 1.0
    assert doc["counts"]["scored"] == 3 and doc["counts"]["unknown_key"] == 1


# ----------------------------------------------------------------------------------------------
# tables against a manifest: every mismatch is an error or a count


def test_table_predictions_against_a_manifest_count_every_mismatch(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, [
        ("v0", "val", 0, "ok"), ("v1", "val", 1, "ok"), ("v2", "val", 2, "fixed"), ("v3", "val", 3, "ok"),
        ("v4", "val", 4, "rejected"), ("t0", "train", 0, "ok")])
    preds = _csv(tmp_path / "preds.csv", [
        ["v0", WNIDS[0], WNIDS[1]],                              # right, 2 guesses
        ["v1", WNIDS[0], "n09999999", WNIDS[0], WNIDS[2], WNIDS[1]],  # unknown wnid, a repeat, right at 5
        ["v2", WNIDS[3], WNIDS[4], WNIDS[0], WNIDS[1], WNIDS[5]],  # wrong; WNIDS[5] is no class here
        ["v4", WNIDS[4]],                                        # a rejected row: excluded
        ["t0", WNIDS[0]],                                        # another split: excluded
    ])                                                           # v3: missing
    doc = evaluate(EvalParams(predictions=str(preds), manifest=str(manifest))).report
    assert doc["metrics"]["images"] == 4
    assert doc["metrics"]["top1_accuracy"] == pytest.approx(0.25)
    assert doc["metrics"]["top5_accuracy"] == pytest.approx(0.5)
    c = doc["counts"]
    assert (c["scored"], c["missing"], c["unknown_wnid"], c["repeated_guess"], c["fewer_than_5"]) == (3, 1, 2, 1, 1)
    assert c["excluded"] == {"other_split": 1, "status_rejected": 1}
    assert {p["true"]: p["guess"] for p in doc["confused"]} == {1: 0, 2: 3}


def test_unknown_keys_stop_the_run_or_are_counted(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, [("v0", "val", 0, "ok"), ("v1", "val", 1, "ok")])
    preds = _csv(tmp_path / "p.csv", [["v0", 0], ["v1", 1], ["nope", 1]])
    with pytest.raises(InputError, match="not in the manifest.*nope"):
        evaluate(EvalParams(predictions=str(preds), manifest=str(manifest)))
    doc = evaluate(EvalParams(predictions=str(preds), manifest=str(manifest), skip_unknown=True)).report
    assert doc["counts"]["unknown_key"] == 1 and doc["metrics"]["top1_accuracy"] == 1.0
    assert doc["predictions"]["kind"] == "index"


@pytest.mark.parametrize("rows,message", [
    ([["v0", 0], ["v0", 1]], "more than once"),
    ([["v0", 0, "", 2]], "empty guess before"),
    ([["v0", "dog"]], "neither a wnid"),
    ([["v0", WNIDS[0]], ["v1", 1]], "mix wnids"),
    ([["v0", 0, 1, 2, 3, 4, 5]], "at most 5"),
])
def test_malformed_prediction_tables_are_errors_naming_the_problem(tmp_path: Path, rows: list[list[object]], message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_predictions(_csv(tmp_path / "p.csv", rows))


def test_class_indices_out_of_range_are_counted(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, [("v0", "val", 0, "ok"), ("v1", "val", 1, "ok")])
    doc = evaluate(EvalParams(predictions=str(_csv(tmp_path / "p.csv", [["v0", 99, 0], ["v1", 1]])),
                              manifest=str(manifest))).report
    assert doc["counts"]["out_of_range"] == 1
    assert doc["metrics"]["top1_accuracy"] == 0.5 and doc["metrics"]["top5_accuracy"] == 1.0


def test_predictions_parquet_round_trip_and_hierarchy_from_a_folder(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, [("v0", "val", 0, "ok"), ("v1", "val", 2, "ok")])
    out = write_predictions(tmp_path / "preds.parquet", ["v0", "v1"], [[1, 0], [3, 2]],
                            [[WNIDS[1], WNIDS[0]], [WNIDS[3], WNIDS[2]]], [[0.6, 0.3], [0.5, 0.4]])
    back = read_predictions(out)
    assert back.kind == "wnid" and back.guesses == ((WNIDS[1], WNIDS[0]), (WNIDS[3], WNIDS[2]))
    graph = tmp_path / "synsets"
    graph.mkdir()
    _tree(graph)
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(WNIDS[:4]) + "\n")
    doc = evaluate(EvalParams(predictions=str(out), manifest=str(manifest), classes=str(classes),
                              synsets=str(graph))).report
    # v0: c1 truth, top-1 c2 (LCA a: 1); v1: c3 truth, top-1 c4 (LCA b: 2); both right within 2.
    assert doc["metrics"]["hierarchical_error_top1"] == pytest.approx(1.5)
    assert doc["metrics"]["hierarchical_error"] == 0.0
    assert doc["metrics"]["top1_accuracy"] == 0.0 and doc["metrics"]["top5_accuracy"] == 1.0


# ----------------------------------------------------------------------------------------------
# ReaL


def test_real_accuracy_leaves_out_empty_label_lists(tmp_path: Path) -> None:
    """Five validation images; ReaL lists (in ILSVRC order) with two empty ones."""
    ilsvrc = sorted(id_to_wnid().values())
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{i}\n" for i in FIRST_TEN_IDS[:5]))
    truth_idx = [ilsvrc.index(w) for w in FIRST_TEN_WNIDS[:5]]
    real = [[truth_idx[0]], [], [truth_idx[2], 7], [], [8]]
    (tmp_path / "real.json").write_text(json.dumps(real))
    inverse = {w: i for i, w in id_to_wnid().items()}
    # top-1 guesses: image 1 right, image 2 wrong (left out), image 3 guesses 7 (a ReaL label, not
    # the original one), image 4 right (left out), image 5 wrong for both.
    top1 = [FIRST_TEN_IDS[0], 1, inverse[ilsvrc[7]], FIRST_TEN_IDS[3], 1]
    sub = tmp_path / "sub.txt"
    sub.write_text("".join(f"{g}\n" for g in top1))
    doc = evaluate(EvalParams(predictions=str(sub), truth=str(gt), real=str(tmp_path / "real.json"))).report
    m = doc["metrics"]
    assert m["real_images"] == 3
    assert m["real_top1_accuracy"] == pytest.approx(2 / 3)
    assert m["top1_accuracy"] == pytest.approx(2 / 5)
    assert doc["counts"]["fewer_than_5"] == 5


def test_real_file_shorter_than_the_images_is_an_error(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{i}\n" for i in FIRST_TEN_IDS[:3]))
    (tmp_path / "real.json").write_text("[[1], []]")
    (tmp_path / "sub.txt").write_text("1\n2\n3\n")
    with pytest.raises(InputError, match="2 entries"):
        evaluate(EvalParams(predictions=str(tmp_path / "sub.txt"), truth=str(gt), real=str(tmp_path / "real.json")))


# ----------------------------------------------------------------------------------------------
# the command


def test_eval_command_prints_a_table_json_and_writes_the_report(tmp_path: Path, invoke) -> None:
    manifest = _manifest(tmp_path, [("v0", "val", 0, "ok"), ("v1", "val", 1, "ok")])
    preds = _csv(tmp_path / "p.csv", [["v0", WNIDS[0]], ["v1", WNIDS[0], WNIDS[1]]])
    result = invoke("eval", preds, "--manifest", manifest)
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and "50.00%" in result.output and "100.00%" in result.output
    out = tmp_path / "eval.json"
    result = invoke("eval", preds, "--manifest", manifest, "--json", "--out", out)
    assert json.loads(result.stdout)["metrics"]["top5_accuracy"] == 1.0
    assert json.loads(out.read_text())["format_version"] == 1
    again = invoke("eval", preds, "--manifest", manifest, "--out", out)
    assert again.exit_code == 2 and "--overwrite" in again.output
    bad = invoke("eval", preds, "--manifest", manifest, "--split", "train")
    assert bad.exit_code == 2 and "Error:" in bad.output
    both = invoke("eval", preds)
    assert both.exit_code == 2


def test_outputs_complete_follows_params_and_inputs(tmp_path: Path) -> None:
    from imgnet_tools.evaluate.run import outputs_complete

    manifest = _manifest(tmp_path, [("v0", "val", 0, "ok")])
    preds = _csv(tmp_path / "p.csv", [["v0", 0]])
    params = EvalParams(predictions=str(preds), manifest=str(manifest), out=str(tmp_path / "e.json"))
    assert not outputs_complete(params)
    evaluate(params)
    assert outputs_complete(params)
    assert not outputs_complete(EvalParams(predictions=str(preds), manifest=str(manifest), out=str(tmp_path / "e.json"),
                                           confused=3))
    _csv(tmp_path / "p.csv", [["v0", 1]])
    import os
    os.utime(preds, ns=(1, 1))
    assert not outputs_complete(params)
