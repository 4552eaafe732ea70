"""Load recipe YAML keeping the line of every key and item, rejecting duplicate keys.

Why: PyYAML's SafeLoader silently keeps the last of two equal keys, and a plain ``dict`` forgets
where a value came from. Mappings load as :class:`LineDict` and sequences as :class:`LineList`,
which remember 1-based line numbers, so a schema error deep in a recipe can name its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

from imgnet_tools.errors import InputError


class LineDict(dict):  # type: ignore[type-arg]
    """A dict that remembers the line of the mapping (``line``) and of each key (``lines``)."""

    line: int = 0
    lines: dict[Any, int]


class LineList(list):  # type: ignore[type-arg]
    """A list that remembers its own line (``line``) and the line of each item (``lines``)."""

    line: int = 0
    lines: list[int]


class RecipeLoader(yaml.SafeLoader):
    """SafeLoader whose mappings reject duplicate keys and record line numbers."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:  # type: ignore[override]
        self.flatten_mapping(node)
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                raise InputError(f"{self.name}:{line}: a mapping key must be a plain value, not {key!r}") from None
            if key in result:
                raise InputError(
                    f"{self.name}:{line}: duplicate key {key!r} (first given on line {result.lines[key]}); "
                    "keep one of them."
                )
            result[key] = self.construct_object(value_node, deep=True)
            result.lines[key] = line
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:  # type: ignore[override]
        result = LineList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.lines = [child.start_mark.line + 1 for child in node.value]
        return result


RecipeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, RecipeLoader.construct_mapping)
RecipeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, RecipeLoader.construct_sequence)


def load_yaml(text: str, name: str = "<recipe>") -> Any:
    """Parse one YAML document; syntax errors and duplicate keys raise :class:`InputError` with the line."""
    loader = RecipeLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise InputError(f"{name}:{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{name}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


_PKG = Path(__file__).resolve().parent.parent


def shipped_dir() -> Path | None:
    """The recipes shipped with imgnet: ``imgnet_tools/_pipelines`` installed, ``pipelines/`` in a checkout."""
    for candidate in (_PKG / "_pipelines", _PKG.parent / "pipelines"):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return None


def shipped_names() -> list[str]:
    """Names of the shipped recipes (``demo``, ``imagenet-1k``, ...)."""
    folder = shipped_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder else []


def locate(recipe: str | Path) -> tuple[Path, bool]:
    """``(path, shipped)``: an existing file as given, else the shipped recipe of that name.

    Why: after ``pip install`` there is no ``pipelines/`` folder at hand, yet
    ``imgnet run demo --workdir demo-out`` should work.
    """
    path = Path(recipe)
    if path.is_file():
        return path, False
    folder = shipped_dir()
    name = path.name[:-5] if path.name.endswith(".yaml") else path.name
    if folder is not None and str(recipe) == name and (folder / f"{name}.yaml").is_file():
        return folder / f"{name}.yaml", True
    known = ", ".join(shipped_names()) or "none"
    raise InputError(f"{recipe}: no such recipe file, nor a shipped recipe of that name (shipped: {known}).")


def load_file(path: Path) -> Any:
    """Read and parse a recipe file (see :func:`load_yaml`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such recipe; see pipelines/ for the shipped ones.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the recipe: {exc}") from None
    return load_yaml(text, str(path))


def line_of(doc: Any, path: Sequence[Any]) -> int:
    """The line of the value at JSON path ``path`` in a loaded document (deepest known line)."""
    line = getattr(doc, "line", 0)
    node = doc
    for part in path:
        if isinstance(node, LineDict) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lines[part]
            node = node[part]
        else:
            break
    return line
