"""What the Colab notebook's cells do (`notebooks/colab.ipynb`), as functions a test runs offline.

- `output_dir`: mount Google Drive and keep `output.dir` there, so running the notebook again after a
  disconnect resumes every stage (finished stages are skipped; generate and evaluate resume
  mid-stage); without Drive (not on Colab, or the mount fails) one line says so and runs stay local.
- `install`: pip-installs the fetched repository with the unsloth extra and the tested pins
  (`swirl_lite/data/constraints-gpu.txt`), keeping the torch Colab ships (a constraint pins it to the
  installed version), then prints what changed; `dry_run` only prints the pip commands.

Only the standard library at module level: the install cell imports this file from the fetched
source, before swirl-lite and its dependencies are installed. Printing goes through `console.py`.
"""

from __future__ import annotations

import importlib.metadata as md
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

# The repository's address once published. Nothing is published there yet: until it is, put the
# repository's folder (e.g. uploaded to your Drive) or another git URL in the notebook's SOURCE.
DEFAULT_SOURCE = "https://github.com/swirl-lite/swirl-lite.git"
STACK = ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "datasets", "unsloth",
         "unsloth-zoo", "swirl-lite")
DRIVE = "/content/drive"


def _say(message: str) -> None:
    from swirl_lite.console import console

    console.print(message, markup=False, soft_wrap=True)


def versions(names: Sequence[str] = STACK) -> dict[str, str | None]:
    """Installed version of each distribution (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = None
    return found


def changes(before: dict[str, str | None], after: dict[str, str | None]) -> list[str]:
    """One line per distribution whose version changed, and one saying torch was kept (or not)."""
    lines = [f"{name}: {before.get(name) or 'not installed'} -> {after[name] or 'removed'}"
             for name in after if before.get(name) != after[name] and name != "torch"]
    torch_before, torch_after = before.get("torch"), after.get("torch")
    if torch_before == torch_after:
        lines.append(f"torch: kept {torch_before or 'absent'}")
    else:
        lines.append(f"torch: CHANGED {torch_before} -> {torch_after}; Colab's CUDA build may be gone: "
                     "restart the runtime and check `swirl-lite doctor`")
    return lines


def install_commands(repo: str | Path, torch_version: str | None, keep_file: Path,
                     extras: str = "unsloth") -> list[list[str]]:
    """The pip command that installs `repo` (editable, with `extras`) under the tested pins and,
    when torch is installed, a constraint file holding it at `torch_version`."""
    repo = Path(repo)
    command = [sys.executable, "-m", "pip", "install", "-q", "-e", f"{repo}[{extras}]" if extras else str(repo),
               "-c", str(repo / "swirl_lite" / "data" / "constraints-gpu.txt")]
    if torch_version:
        command += ["-c", str(keep_file)]
    return [command]


def install(repo: str | Path, dry_run: bool = False, extras: str = "unsloth",
            run: Callable[..., object] = subprocess.run) -> list[str]:
    """Install `repo` keeping this machine's torch; print the commands and, after, what changed.
    Returns the change lines (none in a dry run)."""
    repo = Path(repo)
    if not (repo / "swirl_lite" / "data" / "constraints-gpu.txt").is_file():
        raise FileNotFoundError(f"{repo}: not a swirl-lite repository (no swirl_lite/data/constraints-gpu.txt); "
                                "check SOURCE in the first cell")
    before = versions()
    keep = Path(tempfile.gettempdir()) / "swirl-lite-keep-torch.txt"
    commands = install_commands(repo, before["torch"], keep, extras)
    if before["torch"]:
        _say(f"keeping torch {before['torch']} (constraint in {keep})")
    else:
        _say("no torch installed: pip picks one (on Colab, torch is preinstalled)")
    for command in commands:
        _say("$ " + shlex.join(command))
    if dry_run:
        _say("dry run: nothing installed")
        return []
    if before["torch"]:
        keep.write_text(f"torch=={before['torch']}\n")
    for command in commands:
        try:
            run(command, check=True)
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"pip failed (exit {exc.returncode}; its output is above) installing under torch "
                             f"{before['torch'] or '(none)'} and the tested pins; `pip check` says what conflicts") from None
    lines = changes(before, versions())
    for line in lines:
        _say(line)
    stale = [name for name in ("transformers", "trl", "peft", "datasets") if name in sys.modules]
    if stale and any(line.startswith(f"{name}:") for name in stale for line in lines):
        _say(f"already imported here: {', '.join(stale)}; restart the runtime, then run from the next cell")
    return lines


def output_dir(use_drive: bool, folder: str = "swirl-lite/runs", mount_point: str = DRIVE,
               mount: Callable[[str], object] | None = None, local: str = "runs") -> str:
    """Where runs go: `MyDrive/<folder>` on a mounted Google Drive, else `local` with one line saying
    why (no Drive asked for, not on Colab, or the mount failed). `mount` defaults to Colab's."""
    if not use_drive:
        _say(f"output.dir: {local} on this machine (USE_DRIVE is off): a disconnect loses the run")
        return local
    if mount is None:
        try:
            from google.colab import drive  # type: ignore[import-not-found]
        except ImportError:
            _say(f"no Google Drive here (not on Colab): output.dir {local} on this machine; a disconnect loses it")
            return local
        mount = drive.mount
    try:
        mount(mount_point)
    except Exception as exc:  # noqa: BLE001 - a refused or failed mount: say it and go on locally
        _say(f"Google Drive did not mount ({type(exc).__name__}: {exc}); output.dir {local} on this machine")
        return local
    path = Path(mount_point) / "MyDrive" / folder
    path.mkdir(parents=True, exist_ok=True)
    _say(f"output.dir: {path} (on Google Drive: run the notebook again after a disconnect to resume)")
    return str(path)


def run_path(out: str, recipe: str) -> Path:
    """The run directory a recipe without output.name gets: output.dir / the recipe's file stem."""
    return Path(out) / Path(recipe).stem
