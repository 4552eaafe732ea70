"""Words and gloss per synset for the workers, from the synset table ``imgnet synsets build`` writes.

Workers judge "is this a *tabby, tabby cat*: a cat with a grey or tawny coat mottled with black?",
so every task carries the synset's lemmas and WordNet definition. They come from
``synsets.parquet`` (schema ``synsets``): ``--synsets`` names it or the folder holding it; without
it, the folders a recipe usually has are tried (beside the manifest, its parent, and a
``synsets/`` folder in either).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from imgnet_tools.errors import InputError

SYNSETS_FILE = "synsets.parquet"


@dataclass(frozen=True)
class Words:
    """What a worker reads about a synset."""

    wnid: str
    words: str
    gloss: str


def find_synsets(given: str | None, manifest: str | Path) -> Path:
    """The synsets.parquet to read: ``given`` (file or folder), else the first found near the manifest."""
    if given:
        path = Path(given)
        path = path / SYNSETS_FILE if path.is_dir() else path
        if not path.is_file():
            raise InputError(f"--synsets {given}: no {SYNSETS_FILE} there; build it with imgnet synsets build --out DIR.")
        return path
    here = Path(manifest).resolve().parent
    for folder in (here, here / "synsets", here.parent, here.parent / "synsets"):
        if (folder / SYNSETS_FILE).is_file():
            return folder / SYNSETS_FILE
    raise InputError(f"no {SYNSETS_FILE} beside {manifest} or in a synsets/ folder near it; pass --synsets "
                     "(the folder imgnet synsets build wrote): workers need each synset's words and gloss.")


def load_words(path: Path, wnids: Iterable[str]) -> dict[str, Words]:
    """Words and gloss of every wnid in ``wnids``; an InputError names the wnids the table lacks."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from imgnet_tools.manifest.parquet import read_table

    wanted = sorted(set(wnids))
    table = read_table(path, "synsets", columns=["wnid", "lemmas", "gloss"])
    table = table.filter(pc.is_in(table.column("wnid"), value_set=pa.array(wanted, pa.string())))
    found = {w: Words(w, ", ".join(lemmas), gloss) for w, lemmas, gloss in
             zip(*(table.column(c).to_pylist() for c in ("wnid", "lemmas", "gloss")))}
    missing = [w for w in wanted if w not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"{path} has no row for {shown}; build the synset table with these classes "
                         "(imgnet synsets build --wnids FILE) or pass the right --synsets.")
    return found
