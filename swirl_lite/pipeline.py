"""Runs the stages in order through the run directory, skipping those already finished.

Each stage module `swirl_lite.stages.<name>` exposes `run(recipe, run_dir) -> dict` (its summary,
recorded in the manifest). A stage whose module does not exist yet is simply not offered.

The manifest also records the recipe settings each stage read (its own sections and, through the
stages before it, theirs). When a rerun's recipe differs there, the finished stage is redone, and
so is every stage after it; a crashed stage's partial output from other settings is deleted rather
than resumed. Either way one line says which settings changed.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

from swirl_lite.config import Recipe
from swirl_lite.console import console
from swirl_lite.memory import StagePeak, malloc_for, release
from swirl_lite.runs import RunDir

ORDER = ("generate", "split", "filter", "train", "evaluate")
# The recipe sections each stage reads; a stage also depends on everything the stages before it read.
READS = {
    "generate": ("model", "data", "tools", "generate"),
    "split": (),
    "filter": ("judge", "filter"),
    "train": ("train",),
    "evaluate": ("eval",),
}
# Settings that only add work: evaluate resumes per (model, task), so more adapters redo nothing.
ADDITIVE = {"eval.adapters"}


def available_stages() -> list[str]:
    return [s for s in ORDER if importlib.util.find_spec(f"swirl_lite.stages.{s}") is not None]


def stage_inputs(stage: str, recipe: Recipe) -> dict[str, Any]:
    """The recipe settings `stage` depends on, flattened to {"generate.temperature": 0.7, ...}."""
    upto = ORDER[: ORDER.index(stage) + 1] if stage in ORDER else (stage,)
    dumped = recipe.model_dump(mode="json")
    flat: dict[str, Any] = {}
    for section in (s for st in upto for s in READS.get(st, ())):
        for key, value in dumped[section].items():
            if f"{section}.{key}" not in ADDITIVE:
                flat[f"{section}.{key}"] = value
    return flat


def changed_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'section.key old -> new' for each setting both know that differs (keys sorted). A key only
    one side has (a setting added or dropped by another swirl-lite version) is not a change, also
    inside a nested section (`generate.openai`)."""
    return [f"{k} {old[k]!r} -> {new[k]!r}" for k in sorted(old.keys() & new.keys()) if _differs(old[k], new[k])]


def _differs(old: Any, new: Any) -> bool:
    if isinstance(old, dict) and isinstance(new, dict):
        return any(_differs(old[k], new[k]) for k in old.keys() & new.keys())
    return old != new


def _describe(changes: list[str]) -> str:
    return "; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")


def run_stage(stage: str, recipe: Recipe, run: RunDir, force: bool = False,
              before: Callable[[str], None] | None = None) -> dict | None:
    """Run one stage unless the manifest says it finished with the same settings; `force` deletes
    its output first. `before(stage)` is called just before the stage runs (after any deletion).
    Returns the summary, or None when skipped."""
    inputs = stage_inputs(stage, recipe)
    manifest = run.manifest()
    entry = manifest["stages"].get(stage)
    started = manifest.get("started", {}).get(stage)
    if (run / stage).is_symlink() and not force:  # its output would land outside the run directory
        raise ValueError(f"{run / stage} is a symlink; remove it (or use --force, which removes only the link)")
    if force:
        run.forget(stage)
    elif entry is not None:
        changes = changed_settings(entry["inputs"], inputs) if "inputs" in entry else []
        if not changes:
            console.print(f"[dim]{stage}: finished earlier, skipped (use --force to redo)[/]")
            return None
        console.print(f"[yellow]{stage}: the recipe changed since it ran ({_describe(changes)}): redoing it[/]")
        run.forget(stage)
    elif started is not None and (changes := changed_settings(started, inputs)):
        console.print(f"[yellow]{stage}: partial output from other settings ({_describe(changes)}) deleted[/]")
        run.forget(stage)
    console.rule(f"[bold]{stage}")
    run.mark_started(stage, inputs)
    module = importlib.import_module(f"swirl_lite.stages.{stage}")
    if before is not None:
        before(stage)
    malloc_for(stage)  # rollouts keep their KV caches off glibc's heap (memory.py: why)
    peak = StagePeak()
    try:
        with peak:  # the stage's wall time and peak memory, for the closing panel and the manifest
            summary = module.run(recipe, run) or {}
    finally:  # the stage's models are garbage now; free them before the next stage loads its own
        release()
    run.mark_done(stage, {**summary, **peak.figures(), "inputs": inputs})
    return summary


def run_pipeline(recipe: Recipe, run: RunDir, from_stage: str | None = None, force: bool = False,
                 before: Callable[[str], None] | None = None) -> None:
    """All available stages in order. `from_stage` redoes that stage and every later one, and so
    does a stage that reruns because the recipe changed. `before`: as for `run_stage`."""
    stages = available_stages()
    if from_stage is not None and from_stage not in stages:
        raise ValueError(f"--from {from_stage}: not a stage; choose one of {', '.join(stages)}")
    redo = False
    for stage in stages:
        redo = redo or stage == from_stage
        ran = run_stage(stage, recipe, run, force=force or redo, before=before)
        redo = redo or ran is not None
