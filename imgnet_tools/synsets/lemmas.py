"""Other datasets' category names -> WordNet 3.0 noun synsets, where a lemma matches.

Why: Caltech-101 (and datasets like it) name their classes in plain words (``airplanes``,
``grand_piano``, ``Leopards``); running them through the same pipeline as ImageNet, with wnids in
the manifest, needs a mapping, and a mapping that guesses silently is worse than none. So a name
matches only when a WordNet noun lemma is the name itself (case folded, ``_`` as a space, or the
parts joined: ``wild_cat`` -> ``wildcat``), or its base form by WordNet's own morphology
(``airplanes`` -> ``airplane``); nothing is stripped or translated.

Among a lemma's noun senses, proper nouns (synsets with only instance-of parents: ``garfield`` is
President Garfield, not the cat) are left out; the sense in the most photographable lexicographer
file wins (:data:`PREFERRED`, in that order: ``Leopards`` is the animal, not its pelt, ``bass`` the
fish, not the singer), ties going to the more frequent sense. Every row records how many senses
there were, so ambiguous matches stand out in the report. A wnid already taken by an earlier name
is not given twice (``duplicate_wnid``).

WordNet is read through :mod:`imgnet_tools.synsets.wordnet` (the only nltk importer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from imgnet_tools.errors import ImgnetError

# Lexicographer files of things a photo shows, most likely first; other files rank after these.
PREFERRED = ("noun.animal", "noun.artifact", "noun.plant", "noun.food", "noun.object", "noun.body",
             "noun.substance", "noun.person", "noun.location")
STATUSES = ("matched", "unmatched", "duplicate_wnid", "no_wordnet")


@dataclass(frozen=True)
class Match:
    """What one category name became."""

    category: str
    status: str
    wnid: str | None = None
    lemma: str | None = None
    lexname: str | None = None
    candidates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def queries(name: str) -> list[str]:
    """The spellings a name is looked up as, in order (no duplicates)."""
    base = name.strip().lower()
    forms = [base, base.replace("_", " "), base.replace("_", "").replace(" ", "")]
    return list(dict.fromkeys(f for f in forms if f))


def _choose(senses: Sequence[Any]) -> tuple[Any | None, int]:
    """(the sense to use, how many were candidates) per the module's rule."""
    common = [s for s in senses if not s.instance]
    if not common:
        return None, len(senses)

    def rank(item: tuple[int, Any]) -> tuple[int, int]:
        order, sense = item
        return (PREFERRED.index(sense.lexname) if sense.lexname in PREFERRED else len(PREFERRED), order)

    return min(enumerate(common), key=rank)[1], len(common)


def match_names(names: Sequence[str], wordnet_dir: str | None = None) -> tuple[list[Match], str]:
    """A :class:`Match` per name, in the given order, and a note (empty, or why nothing matched)."""
    from imgnet_tools.synsets.graph import wnid_of
    from imgnet_tools.synsets.wordnet import noun_senses

    wanted = {n: queries(n) for n in names}
    try:
        senses = noun_senses(sorted({q for qs in wanted.values() for q in qs}), wordnet_dir)
    except ImgnetError as exc:
        return [Match(n, "no_wordnet") for n in names], f"WordNet 3.0 unavailable, no name was matched: {exc}"
    taken: dict[str, str] = {}
    out: list[Match] = []
    for name in names:
        found = None
        count = 0
        for q in wanted[name]:
            found, count = _choose(senses.get(q, []))
            if found is not None:
                break
        if found is None:
            out.append(Match(name, "unmatched", candidates=count))
            continue
        wnid = wnid_of(found.offset)
        status = "duplicate_wnid" if wnid in taken else "matched"
        taken.setdefault(wnid, name)
        out.append(Match(name, status, wnid if status == "matched" else None, found.lemma, found.lexname, count))
    return out, ""
