"""Validate a loaded recipe before anything runs, and turn it into typed stage parameters.

Two passes, both reporting every problem with its line: the document against
``schemas/recipe.schema.json`` (structure, stage names, value kinds), then each stage's
``params`` against the stage's parameter dataclass (unknown names, wrong types, missing required
parameters). Why both: the JSON Schema is the published contract of the file format; the
dataclass is the single source of truth for what a stage accepts (the CLI options come from it).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from imgnet_tools.errors import ImgnetError, InputError
from imgnet_tools.manifest.schemas import load_schema
from imgnet_tools.recipes.load import LineDict, line_of, load_file
from imgnet_tools.recipes.stages import STAGES

REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class StageSpec:
    """One step of a recipe as written: stage name, step id, raw params (names normalised), line."""

    stage: str
    id: str
    params: Mapping[str, Any]
    param_lines: Mapping[str, int]
    line: int


@dataclass(frozen=True)
class Recipe:
    """A recipe that passed the schema: where it is, its named paths and its steps."""

    path: Path
    name: str
    description: str
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    stages: tuple[StageSpec, ...]


class RecipeError(InputError):
    """A recipe is invalid; the message lists every problem as ``FILE:LINE: message``."""


def _fail(where: str, problems: list[tuple[int, str]]) -> None:
    if problems:
        lines = [f"{where}:{line}: {msg}" if line else f"{where} (--set): {msg}"
                 for line, msg in sorted(problems, key=lambda p: p[0])]
        raise RecipeError("invalid recipe\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0])


def _schema_problems(doc: Any) -> list[tuple[int, str]]:
    """Every JSON Schema error as (line, message), pointing at the offending key where possible."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema("recipe")["json_schema"])
    problems = []
    for err in validator.iter_errors(doc):
        path = list(err.absolute_path)
        where = "/".join(str(p) for p in path) or "top level"
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = set(err.schema.get("properties", {}))
            for key in sorted(set(err.instance) - known, key=str):
                hint = f" (known: {', '.join(sorted(known))})" if known else ""
                problems.append((line_of(doc, path + [key]), f"unknown key {key!r} in {where}{hint}"))
        elif err.validator == "enum" and path and path[-1] == "stage":
            problems.append((line_of(doc, path), f"unknown stage {err.instance!r} (known: {', '.join(STAGES)})"))
        elif err.validator == "required":
            problems.append((line_of(doc, path), f"{where}: {err.message}"))
        else:
            problems.append((line_of(doc, path), f"{where}: {err.message}"))
    return problems


def _normalise(params: LineDict | None, base_line: int) -> tuple[dict[str, Any], dict[str, int], list[tuple[int, str]]]:
    """Turn CLI-style names (``min-size``) into field names (``min_size``); flag collisions."""
    out: dict[str, Any] = {}
    lines: dict[str, int] = {}
    problems = []
    for key, value in (params or {}).items():
        name = str(key).replace("-", "_")
        line = params.lines.get(key, base_line) if isinstance(params, LineDict) else base_line
        if name in out:
            problems.append((line, f"parameter {key!r} repeats {name!r} (line {lines[name]})"))
        out[name], lines[name] = value, line
    return out, lines, problems


def parse_recipe(path: Path) -> Recipe:
    """Load and validate ``path``; raise :class:`RecipeError` listing every problem with its line."""
    doc = load_file(path)
    where = str(path)
    if not isinstance(doc, dict):
        _fail(where, [(1, "a recipe is a mapping with format_version, name and stages")])
    _fail(where, _schema_problems(doc))
    problems: list[tuple[int, str]] = []
    inputs, outputs = dict(doc.get("inputs") or {}), dict(doc.get("outputs") or {})
    for name in sorted(set(inputs) & set(outputs)):
        problems.append((line_of(doc, ["outputs", name]), f"{name!r} is both an input and an output"))
    specs: list[StageSpec] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(doc["stages"]):
        line = line_of(doc, ["stages", i])
        step_id = raw.get("id", raw["stage"])
        if step_id in seen:
            problems.append((line, f"step id {step_id!r} repeats line {seen[step_id]}; give each step a unique id"))
        seen[step_id] = line
        params, lines, extra = _normalise(raw.get("params"), line)
        problems += extra
        for name, value in params.items():
            for ref in REF.findall(value) if isinstance(value, str) else []:
                if ref not in inputs and ref not in outputs:
                    problems.append((lines[name], f"${{{ref}}} names no input or output of this recipe"))
        specs.append(StageSpec(raw["stage"], step_id, params, lines, line))
    _fail(where, problems)
    return Recipe(path, doc["name"], doc.get("description", ""), inputs, outputs, tuple(specs))


def apply_overrides(recipe: Recipe, overrides: Sequence[str]) -> Recipe:
    """Apply ``--set STEP.PARAM=VALUE`` (VALUE read as a YAML scalar or flow list) to a recipe.

    Why: one shipped recipe serves a CPU laptop and a GPU server (``--set bench.gpus=8``)
    without copying the file. Errors name the offending ``--set``.
    """
    from imgnet_tools.recipes.load import load_yaml

    specs = {s.id: s for s in recipe.stages}
    changed = dict(specs)
    for item in overrides:
        target, sep, raw = item.partition("=")
        step_id, dot, name = target.strip().rpartition(".")
        if not sep or not dot or step_id not in specs:
            raise InputError(f"--set {item}: expected STEP.PARAM=VALUE with STEP one of {', '.join(specs)}")
        value = load_yaml(raw, f"--set {item}") if raw.strip() else ""
        spec = changed[step_id]
        key = name.replace("-", "_")
        changed[step_id] = dataclasses.replace(
            spec, params={**spec.params, key: value}, param_lines={**spec.param_lines, key: 0})
    return dataclasses.replace(recipe, stages=tuple(changed[s.id] for s in recipe.stages))


# ----------------------------------------------------------------------------------------------
# parameters -> dataclasses


class _Bad(Exception):
    """A value does not fit a type (message says what was expected)."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, base: Path) -> Any:
    """Convert a YAML value to type ``tp``: paths resolved against ``base``, lists to tuples.

    Raises ``_Bad`` when the value does not fit; strict about kinds (``"3"`` is not an int).
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, base)
            except _Bad:
                continue
        raise _Bad(f"expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise _Bad(f"expected one of {', '.join(map(repr, args))}, got {value!r}")
    if origin in (tuple, list, Sequence, typing.Sequence) or tp in (tuple, list):
        items = value if isinstance(value, list) else [value]
        inner = args[0] if args else Any
        converted = [coerce(v, inner, base) for v in items]
        return tuple(converted) if origin is not list else converted
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise _Bad(f"expected one of {', '.join(repr(m.value) for m in tp)}, got {value!r}") from None
    if tp is Path or (isinstance(tp, type) and issubclass(tp, Path)):
        if not isinstance(value, str):
            raise _Bad(f"expected a path, got {value!r}")
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base / p).resolve()
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Bad(f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Bad(f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Bad(f"expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Bad(f"expected a string, got {value!r}")
    return value


def named_paths(recipe: Recipe, base: Path) -> dict[str, Path]:
    """Every input and output name -> absolute path (relative ones taken from ``base``)."""
    out = {}
    for name, raw in {**recipe.inputs, **recipe.outputs}.items():
        p = Path(raw).expanduser()
        out[name] = p if p.is_absolute() else (base / p).resolve()
    return out


def _resolve(value: Any, base: Path) -> Any:
    """A path parameter's string (or list of strings) made absolute against ``base``."""
    if isinstance(value, str):
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (base / p).resolve())
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]
    return value


def _substitute(value: Any, paths: Mapping[str, Path]) -> Any:
    if isinstance(value, str):
        return REF.sub(lambda m: str(paths[m.group(1)]), value)
    if isinstance(value, list):
        return [_substitute(v, paths) for v in value]
    return value


def build_params(recipe: Recipe, base: Path) -> list[Any]:
    """Each step's parameter dataclass instance; raise :class:`RecipeError` listing every problem."""
    paths = named_paths(recipe, base)
    problems: list[tuple[int, str]] = []
    built = []
    for spec in recipe.stages:
        stage = STAGES[spec.stage]
        try:
            fields = stage.fields()
        except ImgnetError as exc:
            problems.append((spec.line, str(exc)))
            continue
        kwargs = {}
        for name, value in spec.params.items():
            line = spec.param_lines[name]
            if name not in fields:
                problems.append((line, f"stage {spec.stage!r} has no parameter {name!r} (known: {', '.join(fields)})"))
                continue
            try:
                value = _substitute(value, paths)
                if name in stage.paths:
                    value = _resolve(value, base)
                kwargs[name] = coerce(value, fields[name][0], base)
            except _Bad as exc:
                problems.append((line, f"stage {spec.stage!r} parameter {name!r}: {exc}"))
        missing = [n for n, (_, required) in fields.items() if required and n not in spec.params]
        if missing:
            problems.append((spec.line, f"stage {spec.stage!r} needs parameter(s) {', '.join(missing)}"))
        if not problems:
            try:
                built.append(stage.params_class()(**kwargs))
            except (TypeError, ValueError, ImgnetError) as exc:
                problems.append((spec.line, f"stage {spec.stage!r}: {exc}"))
    _fail(str(recipe.path), problems)
    return built
