"""Plan and run a recipe: stages in order, skipping finished ones, recording every step.

Resumption: when a step is reached (after the steps before it ran), its entry module's
``outputs_complete(params)`` says whether a re-run would do nothing; such steps are skipped.
Asking at that moment, not up front, matters: stages fingerprint their inputs (dedup and shard
hash the manifest rows they read), so a step whose input an earlier step just changed runs
again, and one whose input came out the same is still skipped. ``run.json`` in the working directory is rewritten atomically
after each stage (schema ``run_record``), so a run that fails half-way shows where it stopped
and a re-run continues from there (stages themselves resume their own partial outputs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import fcntl
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from imgnet_tools.errors import AwaitingInput, ImgnetError, InputError, LockedError
from imgnet_tools.manifest.atomic import atomic_write_text
from imgnet_tools.manifest.schemas import format_version, validate_json
from imgnet_tools.recipes.stages import STAGES
from imgnet_tools.recipes.validate import (Recipe, StageSpec, apply_overrides, build_params, named_paths,
                                            parse_recipe)

RECORD_FILE = "run.json"
LOCK_FILE = ".imgnet-run.lock"


@dataclass(frozen=True)
class RunParams:
    """What ``imgnet run`` was asked: the recipe, where relative paths start, and how to run."""

    recipe: Path
    workdir: Path | None = None
    dry_run: bool = False
    force: bool = False
    overrides: tuple[str, ...] = ()

    def base(self) -> Path:
        """Where relative recipe paths start: ``workdir`` if given, else the recipe's directory."""
        return (self.workdir or self.recipe.resolve().parent).resolve()


@dataclass(frozen=True)
class PlannedStep:
    """A step ready to run: its spec, typed parameters and whether its outputs are complete now.

    For a step after one that runs, ``complete`` is what the stage says now; the run asks again
    when it reaches the step (``recheck`` is then True).
    """

    spec: StageSpec
    params: Any
    complete: bool
    recheck: bool = False


@dataclass(frozen=True)
class Plan:
    """A validated recipe with every step's parameters built and inputs checked."""

    recipe: Recipe
    base: Path
    steps: tuple[PlannedStep, ...]
    missing_inputs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        steps = [{"id": step.spec.id, "stage": step.spec.stage, "command": STAGES[step.spec.stage].command,
                  "action": "skip" if step.complete else "run", "outputs_complete": step.complete,
                  "recheck": step.recheck,
                  "given": list(step.spec.params), "params": jsonable(step.params)} for step in self.steps]
        return {"recipe": str(self.recipe.path), "name": self.recipe.name, "base": str(self.base),
                "missing_inputs": list(self.missing_inputs), "steps": steps}


@dataclass
class StepRecord:
    """What happened to one step in this run."""

    id: str
    stage: str
    action: str = "pending"  # pending | skipped | running | ran | failed | waiting
    seconds: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class RunResult:
    """Summary of ``imgnet run``: every step's record and where ``run.json`` is."""

    name: str
    base: Path
    record: Path
    status: str
    steps: list[StepRecord]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "base": str(self.base), "record": str(self.record), "status": self.status,
                "steps": [dataclasses.asdict(s) for s in self.steps]}


@dataclass(frozen=True)
class RunHooks:
    """Callbacks for a caller that shows progress (the CLI); the library itself prints nothing."""

    step_started: Callable[[int, int, PlannedStep], None] | None = None
    step_finished: Callable[[int, int, StepRecord], None] | None = None
    progress: Callable[[int], None] | None = None


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of a dataclass, Path, enum, tuple or mapping."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def plan(params: RunParams) -> Plan:
    """Validate the recipe, build every step's parameters, and ask each stage if it is complete."""
    recipe = apply_overrides(parse_recipe(params.recipe), params.overrides)
    base = params.base()
    built = build_params(recipe, base)
    if params.force:  # "run everything again" must not stop at a stage refusing to replace its output
        built = [dataclasses.replace(b, overwrite=True) if hasattr(b, "overwrite") else b for b in built]
    paths = named_paths(recipe, base)
    missing = tuple(f"{name} ({paths[name]})" for name in recipe.inputs if not paths[name].exists())
    steps = []
    earlier_runs = False
    for spec, stage_params in zip(recipe.stages, built):
        complete = not params.force and not missing and outputs_complete(spec.stage, stage_params)
        steps.append(PlannedStep(spec, stage_params, complete, recheck=earlier_runs and complete))
        earlier_runs = earlier_runs or not complete
    return Plan(recipe, base, tuple(steps), missing)


def outputs_complete(stage: str, params: Any) -> bool:
    """Ask the stage; a run-level error while asking (an input not made yet) means "not complete".

    The stage itself then runs and reports that error properly if it is real.
    """
    try:
        return STAGES[stage].outputs_complete(params)
    except ImgnetError:
        return False


@contextlib.contextmanager
def _locked(base: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``base`` for the run (released by the OS if the process dies)."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / LOCK_FILE, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"another `imgnet run` is using {base}; wait for it or use another --workdir.") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class _Recorder:
    """Keeps ``run.json`` true after every change (atomic rewrite, validated against its schema)."""

    def __init__(self, the_plan: Plan, overrides: tuple[str, ...]) -> None:
        self.path = the_plan.base / RECORD_FILE
        recipe = the_plan.recipe
        self.doc: dict[str, Any] = {
            "format_version": format_version("run_record"),
            "recipe": {"name": recipe.name, "path": str(recipe.path.resolve()),
                       "sha256": hashlib.sha256(recipe.path.read_bytes()).hexdigest()},
            "overrides": list(overrides), "base": str(the_plan.base), "started": _now(), "finished": None, "status": "running",
        }
        self.steps = [StepRecord(s.spec.id, s.spec.stage, params=jsonable(s.params)) for s in the_plan.steps]

    def save(self, status: str | None = None) -> None:
        if status is not None:
            self.doc["status"], self.doc["finished"] = status, _now()
        doc = {**self.doc, "steps": [dataclasses.asdict(s) for s in self.steps]}
        validate_json(doc, "run_record", str(self.path))
        atomic_write_text(self.path, json.dumps(doc, indent=2) + "\n")


def _run_step(step: PlannedStep, record: StepRecord, hooks: RunHooks) -> None:
    t0 = time.perf_counter()
    try:
        result = STAGES[step.spec.stage].call(step.params, hooks.progress)
    except AwaitingInput as exc:  # a human step: not a failure; run.json says what is awaited
        record.action, record.error, record.result = "waiting", str(exc), jsonable(exc.result)
        raise
    except ImgnetError as exc:
        record.action, record.error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    except BaseException as exc:
        record.action, record.error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record.seconds = round(time.perf_counter() - t0, 3)
    record.action = "ran"
    to_dict = getattr(result, "to_dict", None)
    record.result = jsonable(to_dict() if callable(to_dict) else result)


def run(params: RunParams, hooks: RunHooks | None = None) -> RunResult:
    """Run the recipe (see module docstring); raise the failing stage's error after recording it."""
    hooks = hooks or RunHooks()
    the_plan = plan(params)
    if the_plan.missing_inputs:
        raise InputError(f"{params.recipe}: missing input(s): {', '.join(the_plan.missing_inputs)}; "
                         "create them first (for the demo: imgnet demo-data DIR).")
    with _locked(the_plan.base):
        recorder = _Recorder(the_plan, params.overrides)
        recorder.save()
        total = len(the_plan.steps)
        for index, (step, record) in enumerate(zip(the_plan.steps, recorder.steps), start=1):
            if hooks.step_started:
                hooks.step_started(index, total, step)
            if not params.force and outputs_complete(step.spec.stage, step.params):
                record.action = "skipped"
            else:
                record.action = "running"
                recorder.save()
                try:
                    _run_step(step, record, hooks)
                except AwaitingInput:
                    recorder.save("waiting")
                    raise
                except BaseException:
                    recorder.save("failed")
                    raise
            recorder.save()
            if hooks.step_finished:
                hooks.step_finished(index, total, record)
        recorder.save("ok")
    return RunResult(the_plan.recipe.name, the_plan.base, recorder.path, "ok", recorder.steps)
