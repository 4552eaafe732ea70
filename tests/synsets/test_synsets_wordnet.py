"""WordNet access, offline: locating, staging where nltk accepts it, version checks, set-up.

Real nltk and the real WordNet 3.0 files of this machine (Debian wordnet-base, or nltk's copy).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imgnet_tools import places
from imgnet_tools.errors import WordNetError
from imgnet_tools.synsets import setup, wordnet


@pytest.fixture(scope="module")
def wordnet_files() -> Path:
    """The dict folder of the WordNet 3.0 this machine has (wherever the documented order finds it)."""
    located = wordnet.locate()
    folder = wordnet.dict_folder(located.source.path)
    assert folder is not None, f"no WordNet dict files under {located.source.path}"
    return folder


def _copy_dict(src: Path, dst: Path, patch_version: str | None = None) -> Path:
    dst.mkdir(parents=True)
    for name in wordnet.CORPUS_FILES:
        if (src / name).is_file() and name != "lexnames":
            shutil.copyfile(src / name, dst / name)
    if patch_version:  # same length, so every byte offset in data.adj stays right
        data = (dst / "data.adj").read_bytes().replace(b"WordNet 3.0 Copyright", f"WordNet {patch_version} Copyright".encode())
        (dst / "data.adj").write_bytes(data)
    return dst


def test_lexnames_file_is_wordnets_45_lexicographer_files() -> None:
    rows = [line.split("\t") for line in wordnet.LEXNAMES.read_text().splitlines()]
    assert [int(r[0]) for r in rows] == list(range(45))
    names = {r[1]: int(r[2]) for r in rows}
    assert names["noun.Tops"] == 1 and names["verb.weather"] == 2 and names["adj.all"] == 3 and names["adv.all"] == 4
    assert sum(n.startswith("noun.") for n in names) == 26


def test_explicit_dir_is_staged_with_lexnames_and_opens_as_3_0(tmp_path, monkeypatch, wordnet_files) -> None:
    places.use(places.Places(cache_dir=tmp_path / "cache"))
    debian_like = _copy_dict(wordnet_files, tmp_path / "dict__no_lexnames")
    reader, source = wordnet.open_wordnet(str(debian_like))
    assert source.kind == "option" and source.version == "3.0"
    assert reader.synset_from_pos_and_offset("n", 2084071).lemma_names()[:2] == ["dog", "domestic_dog"]
    staged = next((tmp_path / "cache" / "wordnet").glob("*/corpora/wordnet"))
    assert (staged / "lexnames").read_text() == wordnet.LEXNAMES.read_text()
    assert all((staged / f).stat().st_nlink == 1 for f in wordnet.REQUIRED_FILES)  # copies: nltk refuses links
    before = (staged / "data.noun").stat().st_mtime_ns
    wordnet.open_wordnet(str(debian_like))  # staging is reused, not redone
    assert (staged / "data.noun").stat().st_mtime_ns == before


def test_the_default_dir_the_cli_reads_from_the_environment_is_used_when_no_option(tmp_path, monkeypatch, wordnet_files) -> None:
    places.use(places.Places(cache_dir=tmp_path / "cache", wordnet_dir=str(wordnet_files)))
    assert wordnet.locate().source.kind == "env"


def test_explicit_dir_without_wordnet_is_an_error_saying_how_to_get_it(tmp_path) -> None:
    (tmp_path / "empty__no_wordnet").mkdir()
    with pytest.raises(WordNetError, match="holds no WordNet dict files.*setup-wordnet"):
        wordnet.locate(str(tmp_path / "empty__no_wordnet"))


def test_no_wordnet_anywhere_is_an_error_saying_how_to_get_it(tmp_path, monkeypatch) -> None:
    with pytest.raises(WordNetError) as err:
        wordnet.locate(None, use_nltk=False, system_dirs=[str(tmp_path / "missing__usr_share_wordnet")])
    message = str(err.value)
    assert "not found" in message and "apt-get install wordnet-base" in message and "nltk.downloader" in message


def test_other_version_is_refused_unless_allowed(tmp_path, monkeypatch, wordnet_files) -> None:
    places.use(places.Places(cache_dir=tmp_path / "cache"))
    other = _copy_dict(wordnet_files, tmp_path / "dict__version_3_1", patch_version="3.1")
    with pytest.raises(WordNetError, match="WordNet 3.1.*--allow-other-wordnet"):
        wordnet.open_wordnet(str(other))
    _, source = wordnet.open_wordnet(str(other), allow_other=True)
    assert source.version == "3.1"


def test_setup_stages_system_copy_into_target_offline_and_is_idempotent(tmp_path, wordnet_files) -> None:
    params = setup.SetupParams(target=str(tmp_path / "nltk_data"), download=False)
    first = setup.setup_wordnet(params, system_dirs=[str(wordnet_files)])
    assert first.action == "staged" and first.version == "3.0"
    assert (tmp_path / "nltk_data" / "corpora" / "wordnet" / "lexnames").is_file()
    again = setup.setup_wordnet(params, system_dirs=[str(wordnet_files)])
    assert again.action == "found"


def test_setup_without_any_source_says_how_to_get_wordnet(tmp_path, monkeypatch) -> None:
    params = setup.SetupParams(target=str(tmp_path / "nltk_data"), download=False)
    with pytest.raises(WordNetError, match="no WordNet to install"):
        setup.setup_wordnet(params, system_dirs=[str(tmp_path / "nowhere")])


def test_the_cli_alone_reads_the_environment_into_places(tmp_path) -> None:
    from imgnet_tools.cli.main import places_from_environment

    env = {"IMGNET_CACHE_DIR": str(tmp_path / "c"), "XDG_CACHE_HOME": "/x", "IMGNET_WORDNET_DIR": "/wn"}
    assert places_from_environment(env) == places.Places(cache_dir=tmp_path / "c", wordnet_dir="/wn")
    assert places_from_environment({"XDG_CACHE_HOME": "/x"}) == places.Places(cache_dir=Path("/x/imgnet"))
    assert places_from_environment({}).cache_dir == Path.home() / ".cache" / "imgnet"
