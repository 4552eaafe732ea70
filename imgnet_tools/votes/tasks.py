"""Work batches: questions grouped into tasks of one synset each, with gold questions mixed in.

A task is what one worker does in one sitting (an MTurk HIT, one page of the labeling page):
up to ``per_task`` images of one synset, shown with its words and gloss, plus ``gold`` gold
questions of the same synset placed among them at random (half known yes and half known no
where both exist), so a worker's accuracy can be measured without them knowing which. Tasks
group questions that want the same number of votes, because a platform sets that per batch
(MTurk's assignments per HIT, Label Studio's overlap). Everything is deterministic for a seed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePath
from typing import Iterable

from imgnet_tools.errors import InputError
from imgnet_tools.votes.gold import Gold
from imgnet_tools.votes.synsets import Words

URL_FIELDS = ("key", "name", "stem", "path", "wnid")


@dataclass(frozen=True)
class Task:
    """One unit of work: an id, the synset, the votes wanted, the questions (key, is_gold)."""

    task_id: str
    wnid: str
    words: str
    gloss: str
    votes: int
    questions: tuple[tuple[str, bool], ...]


def check_url_template(template: str) -> None:
    """Raise :class:`InputError` unless ``template`` only uses the placeholders we fill."""
    try:
        template.format_map({f: "x" for f in URL_FIELDS})
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"--image-url {template!r}: placeholders are {{{'}, {'.join(URL_FIELDS)}}}; {exc!r}.") from exc


def image_url(template: str, key: str, path: str, wnid: str) -> str:
    """The address a worker's browser loads the image from."""
    pure = PurePath(path)
    return template.format_map({"key": key, "name": pure.name, "stem": pure.stem, "path": path, "wnid": wnid})


def _gold_pools(gold: Gold, showable: set[str]) -> dict[str, tuple[list[str], list[str]]]:
    """Per wnid: (keys known yes, keys known no) that can be shown, sorted."""
    pools: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for (key, wnid), answer in sorted(gold.answers.items()):
        if key in showable:
            pools[wnid][0 if answer == "yes" else 1].append(key)
    return pools


def _pick_gold(pool: tuple[list[str], list[str]], n: int, rng: random.Random) -> list[str]:
    """``n`` gold keys, alternating yes and no while both last."""
    yes, no = rng.sample(pool[0], len(pool[0])), rng.sample(pool[1], len(pool[1]))
    picked: list[str] = []
    while len(picked) < n and (yes or no):
        source = yes if (len(picked) % 2 == 0 and yes) or not no else no
        picked.append(source.pop())
    return picked


def build_tasks(wanted: Iterable[tuple[str, str, int]], words: dict[str, Words], gold: Gold, showable: set[str],
                per_task: int, gold_per_task: int, seed: int, prefix: str) -> tuple[list[Task], Gold, int]:
    """Tasks for the ``(key, wnid, votes)`` questions; also the gold used and the number of tasks
    that got no gold because their synset had none."""
    groups: dict[tuple[str, int], list[str]] = defaultdict(list)
    for key, wnid, votes in wanted:
        groups[(wnid, votes)].append(key)
    pools = _gold_pools(gold, showable)
    tasks, used, without = [], Gold(), 0
    for (wnid, votes), keys in sorted(groups.items()):
        keys.sort()
        for start in range(0, len(keys), per_task):
            task_id = f"{prefix}-{wnid}-v{votes}-{start // per_task + 1:04d}"
            rng = random.Random(f"{seed}:{task_id}")
            golds = _pick_gold(pools[wnid], gold_per_task, rng) if gold_per_task else []
            without += bool(gold_per_task) and not golds
            for g in golds:
                used.answers[(g, wnid)] = gold.answers[(g, wnid)]
            items = [(k, False) for k in keys[start:start + per_task]] + [(g, True) for g in golds]
            rng.shuffle(items)
            info = words[wnid]
            tasks.append(Task(task_id, wnid, info.words, info.gloss, votes, tuple(items)))
    return tasks, used, without
