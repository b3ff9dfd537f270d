"""The run directory: `runs/<name>/` with the resolved recipe, one output per stage, and a manifest.

A stage's output is written under a temporary name and renamed when complete, and the manifest
records a stage only after that rename: a finished entry always means a finished stage.

Safety: the run directory is `output.dir/output.name` and must resolve inside `output.dir` (the
name is one folder name, `config.OutputConfig`). swirl-lite writes `manifest.json` the moment it
creates a run directory, and deletes a stage's output (`--force`, a redo after a recipe change)
only in a directory that has one: an existing folder of someone else's is refused, never emptied.
One process at a time: the CLI holds an exclusive `flock` on `.lock` for as long as it runs, so a
second run into a busy directory is refused at once, naming the first; the kernel drops the lock
when its process dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from swirl_lite.config import Recipe, recipe_to_yaml
from swirl_lite.errors import UsageError

MANIFEST = "manifest.json"
LOCK = ".lock"
_HELD: dict[Path, int] = {}  # run directory -> open lock file descriptor of this process


class RunDirError(UsageError):
    """A run directory that is unsafe to write; the message is one line saying what to change."""


class RunBusyError(RuntimeError):
    """Another live process holds the run's lock; the message names it."""


def run_path(recipe: Recipe) -> Path:
    """`output.dir/output.name`, checked: inside `output.dir` once symlinks are resolved, and
    either new, empty, or a directory swirl-lite made (it has a manifest). Creates nothing."""
    parent = Path(recipe.output.dir).expanduser()
    path = parent / recipe.run_name
    if parent.exists() and not parent.is_dir():
        raise RunDirError(f"output.dir: {parent} is a file, not a folder; set output.dir to a folder")
    root = parent.resolve()
    resolved = path.resolve()
    if resolved.parent != root:
        raise RunDirError(
            f"output.name: run directory {path} resolves to {resolved}, outside output.dir {root}; "
            "pick another output.name"
        )
    if path.exists() and not path.is_dir():
        raise RunDirError(f"output.name: {path} is a file, not a run directory; pick another output.name")
    # An older swirl-lite wrote recipe.yaml before any manifest: such a folder is ours too.
    if path.is_dir() and not (path / MANIFEST).is_file() and {p.name for p in path.iterdir()} - {"recipe.yaml", LOCK}:
        raise RunDirError(
            f"output.name: {path} exists and was not made by swirl-lite (no {MANIFEST}); "
            "pick another output.name or output.dir"
        )
    return path


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def for_recipe(cls, recipe: Recipe, lock: bool = False) -> RunDir:
        """The recipe's run directory, created (with its manifest) when new; the resolved recipe is
        saved into it. `lock`: also take the run's lock for this process (the CLI does)."""
        run = cls(run_path(recipe))
        run.path.mkdir(parents=True, exist_ok=True)
        if lock:
            run.lock()
        if not (run.path / MANIFEST).is_file():
            write_text_atomic(run.path / MANIFEST, json.dumps({"stages": {}}, indent=2))
        write_text_atomic(run.path / "recipe.yaml", recipe_to_yaml(recipe))
        return run

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------ one process per run

    def lock(self) -> None:
        """Hold the run's lock until `unlock()` or this process ends; refuse at once if another
        live process holds it. Under `accelerate launch` only rank 0 takes it (the ranks share
        one run)."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, as before
            return
        key = self.path.resolve()
        if key in _HELD or int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) != 0:
            return
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 400).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunBusyError(
                f"{self.path} is in use by {holder}; wait for it to finish, or set another output.name"
            ) from None
        command = " ".join(["swirl-lite", *sys.argv[1:]])[:200]
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({command}, since {time.strftime('%H:%M:%S')})".encode())
        _HELD[key] = fd

    def unlock(self) -> None:
        fd = _HELD.pop(self.path.resolve(), None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    # ------------------------------------------------------------ manifest

    def manifest(self) -> dict[str, Any]:
        path = self.path / MANIFEST
        if not path.exists():
            return {"stages": {}}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise RunDirError(f"{path}: not valid JSON; delete the run directory or pick another output.name") from None
        if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
            raise RunDirError(f"{path}: not a swirl-lite manifest; delete the run directory or pick another output.name")
        return data

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
        """Drop a stage from the manifest and delete its output, so it is redone from scratch.

        Deletes only `run/<stage>` itself, only in a directory with a manifest; a symlink there is
        removed as a link, never followed."""
        target = self.path / stage
        present = target.exists() or target.is_symlink()
        if not (self.path / MANIFEST).is_file():
            if present:
                raise RunDirError(
                    f"{self.path}: not a swirl-lite run directory (no {MANIFEST}); refusing to delete {target}"
                )
            return
        data = self.manifest()
        dropped = data["stages"].pop(stage, None) is not None
        if data.get("started", {}).pop(stage, None) is not None or dropped:
            write_text_atomic(self.path / MANIFEST, json.dumps(data, indent=2))
        if target.is_symlink() or (present and not target.is_dir()):
            target.unlink()
        elif present:
            shutil.rmtree(target)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` under a temporary name and rename it into place; the temporary file is removed
    when the write fails (a full disk leaves nothing behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:  # name the file that could not be written
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
