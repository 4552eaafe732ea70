"""The ``votes`` recipe stage: ask the crowd, wait for the answers, then apply them.

Each time a recipe reaches it, the stage runs one round of :func:`.adaptive.next_votes`. While
questions are pending it leaves their batch in ``out`` and raises :class:`AwaitingInput`: the
run stops there (``run.json`` says ``waiting``, exit code 3) with a message saying where the work
is and how to bring the answers back. After ``imgnet votes import``, ``imgnet run`` again starts
the next round; once nothing is pending the stage applies the consensus to the manifest
(:func:`.apply.apply_votes`) and the run goes on to ``shard``. ``outputs_complete`` is true when
the apply record matches the votes table and the manifest and nothing was pending.
"""

from __future__ import annotations

from typing import Any, Callable

from imgnet_tools.errors import AwaitingInput
from imgnet_tools.votes.adaptive import NextParams, next_votes
from imgnet_tools.votes.apply import ApplyParams, apply_votes
from imgnet_tools.votes.apply import outputs_complete as applied

__all__ = ["NextParams", "votes_stage", "outputs_complete"]


def apply_params(params: NextParams) -> ApplyParams:
    """The apply that ends the stage: the same manifest, votes and consensus options."""
    return ApplyParams(params.manifest, params.votes, None, "keep", params.questions, **params.consensus_options())


def votes_stage(params: NextParams, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """One round; raise :class:`AwaitingInput` while votes are missing, else apply and summarise."""
    round_ = next_votes(params, progress)
    if round_.batch is not None:
        b = round_.batch
        files = ", ".join(f"{fmt}: {', '.join(names)}" for fmt, names in sorted(b.files.items()) if fmt != "gold" and names)
        serve = "imgnet votes serve {} --votes {}{}".format(
            params.manifest, params.votes, f" --tasks {b.out}/page_tasks.json" if b.files.get("page") else "")
        raise AwaitingInput(
            f"votes: {round_.pending} images need {round_.votes_wanted} more votes "
            f"({b.tasks} tasks over {b.synsets} synsets){' (the same batch as before)' if b.reused else ''}; "
            f"the work is in {b.out} ({files}), or label them yourselves with `{serve}`. "
            f"Bring the answers in with `imgnet votes import FILES --votes {params.votes} --manifest {params.manifest}`, "
            "then run the recipe again.",
            round_.to_dict())
    applied_result = apply_votes(apply_params(params))
    return {"next": round_.to_dict(), "apply": applied_result.to_dict()}


def outputs_complete(params: NextParams) -> bool:
    """True when the consensus was applied to the manifest as it is, with nothing pending."""
    return applied(apply_params(params), require_complete=True)
