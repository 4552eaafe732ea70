"""Load the artifact schemas shipped in ``schemas/`` and validate artifacts against them.

Schema files are JSON. ``kind`` says what they describe:

* ``parquet``: ``fields`` lists Arrow columns (``name``, ``type``, ``nullable``, ``description``);
  :mod:`imgnet_tools.manifest.parquet` turns them into an Arrow schema.
* ``json``: ``json_schema`` is a JSON Schema (draft 2020-12) for the document.
* ``text``: ``line_pattern`` is a regular expression every line must match.

The folder is found inside the installed package (``imgnet_tools/_schemas``, put there by
``setup.py``) or, in a source checkout, at the top-level ``schemas/``.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Mapping

from imgnet_tools.errors import SchemaError

_PKG = Path(__file__).resolve().parent.parent


def schemas_dir() -> Path:
    """Directory that holds the ``*.schema.json`` files (installed copy first, then the checkout)."""
    for candidate in (_PKG / "_schemas", _PKG.parent / "schemas"):
        if candidate.is_dir() and any(candidate.glob("*.schema.json")):
            return candidate
    raise SchemaError("imgnet's schemas/ folder is missing from the installation; reinstall imgnet-tools.")


def schema_names() -> list[str]:
    """Names of every shipped schema (file name without ``.schema.json``)."""
    return sorted(p.name[: -len(".schema.json")] for p in schemas_dir().glob("*.schema.json"))


@functools.lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed schema ``name`` (for example ``"synsets"``)."""
    path = schemas_dir() / f"{name}.schema.json"
    if not path.is_file():
        raise SchemaError(f"no schema named {name!r} in {schemas_dir()}; known: {', '.join(schema_names())}")
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=functools.partial(_unique, path))
    return doc


def _unique(path: Path, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (JSON would keep the last one silently)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise SchemaError(f"{path}: key {key!r} appears twice in one object; keep one.")
        seen[key] = value
    return seen


def format_version(name: str) -> int:
    """Current ``format_version`` of artifact ``name``."""
    return int(load_schema(name)["format_version"])


def readable_versions(name: str) -> tuple[int, ...]:
    """Every ``format_version`` of artifact ``name`` this imgnet reads (the current one and any
    older ones its schema lists under ``reads_versions``)."""
    schema = load_schema(name)
    return tuple(sorted({int(schema["format_version"]), *map(int, schema.get("reads_versions", ()))}))


def check_version(name: str, found: object, where: str) -> int:
    """The version ``found`` as an int; :class:`SchemaError` unless this imgnet reads it."""
    readable = readable_versions(name)
    try:
        version = int(str(found))
    except ValueError:
        version = -1
    if version not in readable:
        newer = version > max(readable)
        raise SchemaError(
            f"{where}: format_version {found!r} of {name} is not supported (this imgnet reads version"
            f"{'s' if len(readable) > 1 else ''} {', '.join(map(str, readable))}); "
            + ("it was written by a newer imgnet: upgrade imgnet-tools." if newer else
               "rebuild it with this imgnet or use the imgnet version that wrote it.")
        )
    return version


def validate_json(doc: Mapping[str, Any], name: str, where: str = "document") -> None:
    """Validate a JSON document against schema ``name``; raise :class:`SchemaError` naming the field."""
    import jsonschema

    schema = load_schema(name)
    if schema.get("kind") != "json":
        raise SchemaError(f"schema {name} describes {schema.get('kind')}, not a JSON document")
    validator = jsonschema.Draft202012Validator(schema["json_schema"])
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        loc = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise SchemaError(f"{where} does not match schema {name} at {loc}: {first.message}")
    check_version(name, doc.get("format_version"), where)


def read_valid_json(path: str | Path, name: str) -> dict[str, Any] | None:
    """The JSON document at ``path`` when it is an object following schema ``name``; None when it is
    missing, unreadable or does not follow it (a record of a partial or foreign run: redo the work)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            return None
        validate_json(doc, name, str(path))
    except (OSError, ValueError, SchemaError):
        return None
    return doc


def validate_text(path: str | Path, name: str) -> int:
    """Check every line of a text artifact against its ``line_pattern``; return the line count."""
    schema = load_schema(name)
    pattern = re.compile(schema["line_pattern"])
    count = 0
    with open(path, encoding="utf-8", newline="\n") as fh:
        for count, line in enumerate(fh, start=1):
            if not line.endswith("\n") or not pattern.fullmatch(line[:-1]):
                raise SchemaError(f"{path}:{count}: line does not match schema {name}: {line[:80]!r}")
    return count
