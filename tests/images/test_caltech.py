"""scan on the Caltech-101 layout: categories as classes, background left out, names matched to wnids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgnet_tools import places
from imgnet_tools.images.scan import ScanParams, scan
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.manifest.schemas import validate_json
from imgnet_tools.synsets.lemmas import match_names, queries
from tests.imagegen import jpeg_bytes

# Real Caltech-101 folder names: matched by a lemma, by its base form, by joining, and not at all.
CATEGORIES = {"airplanes": 3, "Leopards": 2, "grand_piano": 2, "wild_cat": 1, "Faces_easy": 2, "garfield": 1,
              "BACKGROUND_Google": 2}
EXPECTED = {"airplanes": "n02691156", "Leopards": "n02128385", "grand_piano": "n03452741", "wild_cat": "n02124623"}


def _caltech_tree(root: Path) -> Path:
    """caltech-101/101_ObjectCategories/<category>/image_NNNN.jpg plus an Annotations/ folder."""
    cats = root / "caltech-101" / "101_ObjectCategories"
    seed = 0
    for name, count in CATEGORIES.items():
        (cats / name).mkdir(parents=True)
        for i in range(1, count + 1):
            seed += 1
            (cats / name / f"image_{i:04d}.jpg").write_bytes(jpeg_bytes(seed, (60, 45)))
    (cats / "airplanes" / "image_0099.jpg").write_bytes(b"")  # a broken file stays a row
    ann = root / "caltech-101" / "Annotations" / "Airplanes_Side_2"
    ann.mkdir(parents=True)
    (ann / "annotation_0001.mat").write_bytes(b"MATLAB 5.0")
    return root / "caltech-101"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("caltech")
    tree = _caltech_tree(root)
    scan(ScanParams(src=(str(tree),), out=str(root / "work"), workers=1))
    return tree, root / "work"


def test_categories_become_classes_without_the_background(scanned: tuple[Path, Path]) -> None:
    _, work = scanned
    rows = read_table(work / "manifest.parquet", "manifest").to_pylist()
    names = sorted(c for c in CATEGORIES if c != "BACKGROUND_Google")
    assert {r["split"] for r in rows} == {"train"}
    assert not any("BACKGROUND" in r["path"] or "Annotations" in r["path"] for r in rows)
    assert len(rows) == sum(n for c, n in CATEGORIES.items() if c != "BACKGROUND_Google") + 1
    for r in rows:
        category = Path(r["path"]).parent.name
        assert r["label"] == names.index(category)
        assert r["wnid"] == EXPECTED.get(category)
    empty = [r for r in rows if r["path"].endswith("image_0099.jpg")]
    assert empty[0]["status"] == "rejected" and empty[0]["reason"] == "empty"


def test_the_match_table_lists_matched_and_unmatched_names(scanned: tuple[Path, Path]) -> None:
    _, work = scanned
    doc = json.loads((work / "caltech_classes.json").read_text())
    validate_json(doc, "caltech_classes", "caltech_classes.json")
    by = {c["category"]: c for c in doc["classes"]}
    assert set(by) == set(CATEGORIES) - {"BACKGROUND_Google"}
    assert {c: by[c]["wnid"] for c in EXPECTED} == EXPECTED
    assert by["Leopards"]["lemma"] == "leopard" and by["Leopards"]["lexname"] == "noun.animal"
    assert by["Leopards"]["candidates"] == 2  # the animal and its pelt: the animal wins
    assert by["garfield"]["status"] == "unmatched"  # only a proper noun (President Garfield)
    assert by["Faces_easy"]["status"] == "unmatched" and by["Faces_easy"]["wnid"] is None
    assert by["airplanes"]["images"] == 4 and doc["counts"] == {"matched": 4, "unmatched": 2}


def test_include_background_keeps_the_clutter_class(tmp_path: Path, invoke) -> None:
    tree = _caltech_tree(tmp_path)
    result = invoke("scan", tree / "101_ObjectCategories", "--out", tmp_path / "work", "--include-background",
                    "--split", "all", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "Caltech-101 categories matched to WordNet: 4 of 7" in result.stdout
    rows = read_table(tmp_path / "work" / "manifest.parquet", "manifest").to_pylist()
    background = [r for r in rows if "BACKGROUND_Google" in r["path"]]
    assert len(background) == 2 and all(r["wnid"] is None and r["split"] == "all" for r in background)


def test_without_wordnet_names_stay_unmatched_and_the_table_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nowordnet").mkdir()
    places.use(places.Places(wordnet_dir=str(tmp_path / "nowordnet")))  # what the CLI reads from IMGNET_WORDNET_DIR
    tree = _caltech_tree(tmp_path)
    scan(ScanParams(src=(str(tree),), out=str(tmp_path / "work"), workers=1))
    doc = json.loads((tmp_path / "work" / "caltech_classes.json").read_text())
    assert {c["status"] for c in doc["classes"]} == {"no_wordnet"} and "WordNet" in doc["note"]
    rows = read_table(tmp_path / "work" / "manifest.parquet", "manifest").to_pylist()
    assert all(r["wnid"] is None for r in rows) and {r["label"] for r in rows} == set(range(6))


def test_lookup_spellings_and_duplicate_wnids() -> None:
    assert queries("wild_cat") == ["wild_cat", "wild cat", "wildcat"]
    matches, note = match_names(["airplanes", "airplane"])
    assert note == "" and [m.status for m in matches] == ["matched", "duplicate_wnid"]
    assert matches[1].wnid is None and matches[1].lemma == "airplane"


def test_report_shows_the_match_table(scanned: tuple[Path, Path], tmp_path: Path) -> None:
    from imgnet_tools.report.build import ReportParams, report

    _, work = scanned
    result = report(ReportParams(work, out=tmp_path / "report"))
    available = {s["id"]: s["available"] for s in result.sections}
    assert available["wordnet-matches"] is True
    html = result.html.read_text()
    assert "grand_piano" in html and "n03452741" in html and "unmatched" in html
