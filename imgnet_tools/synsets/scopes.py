"""Which synsets a build keeps: ``all``, ``physical``, or a class list plus its ancestors.

Every scope is closed under structure parents (see :mod:`.graph`), so each kept synset's paths to
entity.n.01 are kept too and depths mean the same in every scope.

The ``physical`` rule (ImageNet-like countable physical things): a synset is in when it lies
below physical_entity.n.01 (n00001930) through is-a links only (so instances such as named
people and places are out) and its lexicographer file is one of
:data:`PHYSICAL_LEXNAMES` -- artifacts, animals, plants, people, body parts, foods, natural
objects. Mass and abstract categories (noun.substance, noun.process, noun.phenomenon,
noun.location, noun.quantity, ...) are out. Their ancestors are then added. Measured on WordNet
3.0 (tests/synsets/test_synsets_build.py): it keeps 993 of the 1,000 ILSVRC-2012 classes (the misses are
web site, comic book, crossword puzzle, street sign, traffic light, book jacket -- filed as
noun.communication -- and toilet tissue, a noun.substance) and 21,153 of the 21,841 ImageNet-21k
fall11 classes (96.9%; most misses are sports and activities, noun.act). 33,984 synsets in all.
"""

from __future__ import annotations

from collections.abc import Sequence

from imgnet_tools.synsets.graph import ancestor_closure, is_a_descendants

SCOPES = ("all", "physical")
PHYSICAL_ROOT = 1930  # physical_entity.n.01
PHYSICAL_LEXNAMES = frozenset({
    "noun.artifact", "noun.animal", "noun.plant", "noun.person", "noun.body", "noun.food", "noun.object",
})


def physical_rows(
    offsets: Sequence[int], lexnames: Sequence[str], parents: Sequence[Sequence[int]], struct: Sequence[Sequence[int]]
) -> list[int]:
    """Rows of the ``physical`` scope (rule in the module doc), ancestors included, sorted."""
    row = {o: i for i, o in enumerate(offsets)}
    is_a_rows = [[row[p] for p in ps] for ps in parents]
    below = is_a_descendants(is_a_rows, row[PHYSICAL_ROOT])
    seeds = [i for i in below if lexnames[i] in PHYSICAL_LEXNAMES]
    return ancestor_closure(struct, seeds)


def class_rows(struct: Sequence[Sequence[int]], classes: Sequence[int]) -> list[int]:
    """Rows of a class-list scope: the classes and all their ancestors, sorted."""
    return ancestor_closure(struct, classes)
