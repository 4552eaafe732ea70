"""Checkpoints: one ``torch.save`` file, written atomically, whose metadata has a schema.

Layout (docs/CONTRACTS.md "Checkpoint"): a dict ``{"meta": META, "state": STATE}``.

* ``META`` is JSON-ready and follows ``schemas/checkpoint.schema.json`` (format_version, model name,
  classes, image size, normalisation, the training parameters, where training stands: ``epoch``
  finished epochs and ``step`` steps into the next one, and the per-epoch history);
* ``STATE`` holds tensors: ``model`` (the state_dict of the uncompiled model), ``optimizer``,
  ``scaler`` (fp16 only) and ``rng`` (torch CPU and CUDA generator states, Python's ``random``).

Files are written to a temporary name and renamed (``manifest.atomic``), so a crash mid-save keeps
the previous checkpoint. Reading uses ``torch.load(weights_only=True)``: a checkpoint cannot run
code, and a foreign or damaged file is a clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgnet_tools.errors import InputError, SchemaError
from imgnet_tools.manifest.atomic import atomic_path
from imgnet_tools.manifest.schemas import validate_json

SCHEMA = "checkpoint"


def save(path: str | Path, meta: dict[str, Any], state: dict[str, Any]) -> None:
    """Validate ``meta`` and write ``{"meta", "state"}`` to ``path`` atomically."""
    import torch

    validate_json(meta, SCHEMA, f"checkpoint {path}")
    with atomic_path(Path(path)) as tmp:
        torch.save({"meta": meta, "state": state}, tmp)


def load(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta, state) of a checkpoint, tensors on the CPU; InputError for anything else."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; write it with `imgnet train SHARDS --out {path}`.")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path} is not a readable imgnet checkpoint ({first[:200]}).") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("meta"), dict) or not isinstance(doc.get("state"), dict):
        raise InputError(f"{path} is a torch file but not an imgnet checkpoint (no meta/state); write one with imgnet train.")
    try:
        validate_json(doc["meta"], SCHEMA, str(path))
    except SchemaError as exc:
        raise InputError(str(exc)) from exc
    return doc["meta"], doc["state"]


def rng_state() -> dict[str, Any]:
    """The random generators a resumed run restores (torch CPU and CUDA, Python's random)."""
    import random

    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "python": random.getstate()}


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` saved (CUDA only when the device count matches)."""
    import random

    import torch

    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    python = state.get("python")
    if python is not None:
        random.setstate((python[0], tuple(python[1]), python[2]))
