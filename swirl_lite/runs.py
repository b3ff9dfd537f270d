"""The run directory: `runs/<name>/` with the resolved recipe, one output per stage, and a manifest.

A stage's output is written under a temporary name and renamed when complete, and the manifest
records a stage only after that rename: a finished entry always means a finished stage.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from swirl_lite.config import Recipe, recipe_to_yaml

MANIFEST = "manifest.json"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def for_recipe(cls, recipe: Recipe) -> RunDir:
        run = cls(Path(recipe.output.dir) / recipe.run_name)
        run.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run.path / "recipe.yaml", recipe_to_yaml(recipe))
        return run

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------ manifest

    def manifest(self) -> dict[str, Any]:
        path = self.path / MANIFEST
        if not path.exists():
            return {"stages": {}}
        return json.loads(path.read_text())

    def is_done(self, stage: str) -> bool:
        return stage in self.manifest()["stages"]

    def mark_started(self, stage: str, inputs: dict[str, Any]) -> None:
        """Record the settings a stage starts with, so a crashed run resumes only with the same ones."""
        data = self.manifest()
        data.setdefault("started", {})[stage] = inputs
        write_text_atomic(self.path / MANIFEST, json.dumps(data, indent=2))

    def mark_done(self, stage: str, summary: dict[str, Any] | None = None) -> None:
        data = self.manifest()
        data["stages"][stage] = {"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **(summary or {})}
        data.get("started", {}).pop(stage, None)
        write_text_atomic(self.path / MANIFEST, json.dumps(data, indent=2))

    def forget(self, stage: str) -> None:
        """Drop a stage from the manifest and delete its output, so it is redone from scratch."""
        data = self.manifest()
        dropped = data["stages"].pop(stage, None) is not None
        if data.get("started", {}).pop(stage, None) is not None or dropped:
            write_text_atomic(self.path / MANIFEST, json.dumps(data, indent=2))
        target = self.path / stage
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
