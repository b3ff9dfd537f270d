"""Runs the stages in order through the run directory, skipping those already finished.

Each stage module `swirl_lite.stages.<name>` exposes `run(recipe, run_dir) -> dict` (its summary,
recorded in the manifest). A stage whose module does not exist yet is simply not offered.
"""

from __future__ import annotations

import importlib
import importlib.util

from swirl_lite.config import Recipe
from swirl_lite.console import console
from swirl_lite.runs import RunDir

ORDER = ("generate", "split", "filter", "train", "evaluate")


def available_stages() -> list[str]:
    return [s for s in ORDER if importlib.util.find_spec(f"swirl_lite.stages.{s}") is not None]


def run_stage(stage: str, recipe: Recipe, run: RunDir, force: bool = False) -> dict | None:
    """Run one stage unless the manifest says it finished; `force` deletes its output first."""
    if force:
        run.forget(stage)
    elif run.is_done(stage):
        console.print(f"[dim]{stage}: finished earlier, skipped (use --force to redo)[/]")
        return None
    console.rule(f"[bold]{stage}")
    module = importlib.import_module(f"swirl_lite.stages.{stage}")
    summary = module.run(recipe, run) or {}
    run.mark_done(stage, summary)
    return summary


def run_pipeline(recipe: Recipe, run: RunDir, from_stage: str | None = None, force: bool = False) -> None:
    """All available stages in order. `from_stage` redoes that stage and every later one."""
    stages = available_stages()
    if from_stage is not None and from_stage not in stages:
        raise ValueError(f"--from {from_stage}: not a stage; choose one of {', '.join(stages)}")
    redo = False
    for stage in stages:
        redo = redo or stage == from_stage
        run_stage(stage, recipe, run, force=force or redo)
