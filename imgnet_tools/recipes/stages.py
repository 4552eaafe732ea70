"""The stage registry: recipe stage name -> the library entry point that runs it.

Entry modules are imported only when a recipe uses the stage, so loading a recipe that names six
stages does not import torch or DALI until the bench stage is actually planned. Every entry
module follows docs/CONTRACTS.md: a frozen ``XParams`` dataclass, ``x(params, progress)`` and
``outputs_complete(params) -> bool``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from imgnet_tools.errors import DependencyError


@dataclass(frozen=True)
class StageDef:
    """Where a stage lives: module, parameter dataclass, entry function, and its CLI command."""

    name: str
    module: str
    params: str
    func: str
    command: str
    paths: tuple[str, ...] = ()

    def _module(self) -> ModuleType:
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            raise DependencyError(
                f"stage {self.name!r} needs {self.module}, which cannot be imported ({exc}); "
                "reinstall imgnet-tools with its dependencies (make setup)."
            ) from exc

    def params_class(self) -> type:
        """The stage's frozen parameter dataclass."""
        cls: type = getattr(self._module(), self.params)
        return cls

    def entry(self) -> Callable[..., Any]:
        """The stage function ``x(params, progress=None) -> XResult``."""
        fn: Callable[..., Any] = getattr(self._module(), self.func)
        return fn

    def outputs_complete(self, params: Any) -> bool:
        """True when a re-run of the stage with ``params`` would do nothing."""
        check: Callable[[Any], bool] = getattr(self._module(), "outputs_complete")
        return bool(check(params))

    def call(self, params: Any, progress: Callable[[int], None] | None) -> Any:
        """Run the stage, passing ``progress`` when the entry point takes it."""
        fn = self.entry()
        if "progress" in inspect.signature(fn).parameters:
            return fn(params, progress=progress)
        return fn(params)

    def fields(self) -> dict[str, tuple[Any, bool]]:
        """Parameter name -> (resolved type hint, required?) for the stage's dataclass."""
        cls = self.params_class()
        hints = typing.get_type_hints(cls)
        return {
            f.name: (hints.get(f.name, Any), f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls)
            if f.init
        }


# ``paths``: the parameters that name files or folders (stages type them ``str``); a recipe's
# relative values for them are resolved against the recipe's base directory.
STAGES: dict[str, StageDef] = {
    s.name: s
    for s in (
        StageDef("demo", "imgnet_tools.demo.data", "DemoParams", "make_demo", "imgnet demo-data", ("out",)),
        StageDef("synsets", "imgnet_tools.synsets.build", "BuildParams", "build_synsets", "imgnet synsets build",
                 ("out", "wnids", "wordnet_dir")),
        StageDef("scan", "imgnet_tools.images.scan", "ScanParams", "scan", "imgnet scan",
                 ("src", "out", "classes", "val_labels", "val_id_map")),
        StageDef("collect", "imgnet_tools.collect.run", "CollectParams", "collect", "imgnet collect",
                 ("urls", "out", "classes")),
        StageDef("verify", "imgnet_tools.images.verify", "VerifyParams", "verify", "imgnet verify",
                 ("manifest", "out", "fix")),
        StageDef("dedup", "imgnet_tools.dedup.run", "DedupParams", "dedup", "imgnet dedup", ("manifest", "out")),
        # A human step: exports work and stops the run until votes are imported (imgnet_tools.votes.stage).
        StageDef("votes", "imgnet_tools.votes.stage", "NextParams", "votes_stage", "imgnet votes next",
                 ("manifest", "votes", "out", "synsets", "gold_file", "questions")),
        StageDef("shard", "imgnet_tools.shards.write", "ShardParams", "shard", "imgnet shard",
                 ("manifest", "out", "words")),
        StageDef("bench", "imgnet_tools.bench.run", "BenchParams", "bench", "imgnet bench", ("shards", "out")),
        StageDef("train", "imgnet_tools.train.loop", "TrainParams", "train", "imgnet train", ("shards", "out")),
        StageDef("predict", "imgnet_tools.train.predict", "PredictParams", "predict", "imgnet predict",
                 ("checkpoint", "shards", "out")),
        StageDef("eval", "imgnet_tools.evaluate.run", "EvalParams", "evaluate", "imgnet eval",
                 ("predictions", "manifest", "truth", "classes", "synsets", "real", "out")),
        StageDef("report", "imgnet_tools.report.build", "ReportParams", "report", "imgnet report", ("dir", "out")),
    )
}
