"""Run directories: the path stays inside output.dir, only swirl-lite's own folders are deleted,
and one process at a time writes a run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from swirl_lite import pipeline
from swirl_lite.cli import main
from swirl_lite.config import RecipeError, build_recipe
from swirl_lite.runs import RunBusyError, RunDir, RunDirError, run_path


def _recipe(tmp_path: Path, **output) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"data": {"task": "arithmetic", "limit": 2},
                                    "output": {"dir": str(tmp_path / "runs"), **output}}))
    return path


@pytest.mark.parametrize("name", ["..", ".", "../../x", "/tmp/abs", "a/b", "a\\b", "", " x"])
def test_output_name_is_one_folder_name(name):
    with pytest.raises(RecipeError) as err:
        build_recipe({"output": {"name": name}})
    assert len(err.value.errors) == 1 and err.value.errors[0].startswith("recipe: output.name: ")


def test_home_in_output_dir_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    recipe = build_recipe({"output": {"dir": "~/runs", "name": "x"}})
    assert run_path(recipe) == tmp_path / "runs" / "x"
    assert not Path("~").exists()


def test_a_user_folder_is_refused_and_survives_force(tmp_path):
    user = tmp_path / "runs" / "mine"
    (user / "split").mkdir(parents=True)
    (user / "split" / "thesis.txt").write_text("precious")
    recipe = _recipe(tmp_path)
    for name in ("mine", "../runs/mine", str(user)):
        result = CliRunner().invoke(main, ["split", str(recipe), "--force", "--set", f"output.name={name}"])
        assert result.exit_code in (1, 2), result.output
        assert "output.name" in result.output and "Traceback" not in result.output
    assert (user / "split" / "thesis.txt").read_text() == "precious"
    assert not (user / "manifest.json").exists()


def test_the_parent_of_output_dir_is_never_the_run(tmp_path):
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "notes.txt").write_text("mine")
    with pytest.raises(RecipeError):
        build_recipe({"output": {"dir": str(tmp_path / "runs"), "name": ".."}})
    (tmp_path / "runs").mkdir()
    os.symlink(tmp_path, tmp_path / "runs" / "up")  # a name that is a link out of output.dir
    with pytest.raises(RunDirError, match="outside output.dir"):
        RunDir.for_recipe(build_recipe({"output": {"dir": str(tmp_path / "runs"), "name": "up"}}))
    assert (tmp_path / "split" / "notes.txt").exists()


@pytest.fixture
def fake_stages(monkeypatch):
    def fake_import(name: str):
        stage = name.rsplit(".", 1)[-1]

        def run(recipe, run_dir):
            (run_dir / stage).mkdir(exist_ok=True)
            (run_dir / stage / "out.txt").write_text(stage)
            return {}

        return types.SimpleNamespace(run=run)

    monkeypatch.setattr(pipeline.importlib, "import_module", fake_import)
    monkeypatch.setattr(pipeline, "available_stages", lambda: ["generate", "split"])


def test_a_file_behind_a_link_survives_force_and_an_automatic_redo(tmp_path, fake_stages):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("user data")
    recipe = build_recipe({"output": {"dir": str(tmp_path / "runs"), "name": "t"}})
    run = RunDir.for_recipe(recipe)
    pipeline.run_pipeline(recipe, run)
    for redo in ("force", "changed recipe"):
        shutil.rmtree(run / "split")
        os.symlink(outside, run / "split")
        if redo == "force":
            pipeline.run_pipeline(recipe, run, force=True)
        else:
            hotter = build_recipe({"output": {"dir": str(tmp_path / "runs"), "name": "t"},
                                   "generate": {"temperature": 0.1 if recipe.generate.temperature != 0.1 else 0.2}})
            pipeline.run_pipeline(hotter, run)
            recipe = hotter
        assert (outside / "keep.txt").read_text() == "user data", redo
        assert not (outside / "out.txt").exists(), redo
        assert not (run / "split").is_symlink() and (run / "split" / "out.txt").exists(), redo


def test_forget_refuses_a_folder_without_manifest(tmp_path):
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "keep.txt").write_text("x")
    with pytest.raises(RunDirError, match="not a swirl-lite run directory"):
        RunDir(tmp_path).forget("split")
    assert (tmp_path / "split" / "keep.txt").exists()


def test_output_dir_that_is_a_file(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    result = CliRunner().invoke(main, ["split", str(_recipe(tmp_path))])
    assert result.exit_code in (1, 2) and "output.dir" in result.output and "is a file" in result.output


# ---------------------------------------------------------------- one process per run directory


HOLD = """
import sys, time
from swirl_lite.config import build_recipe
from swirl_lite.runs import RunDir
RunDir.for_recipe(build_recipe({"output": {"dir": sys.argv[1], "name": "busy"}}), lock=True)
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_run_into_a_busy_directory_is_refused_at_once(tmp_path):
    """Two real `generate` runs into one directory: the first waits on an endpoint that never
    answers (holding the lock), the second (`--force`, other settings) is refused at once."""
    from openai_stub import serve

    (tmp_path / "q.jsonl").write_text('{"question": "What is 2 + 2?", "answer": "4"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "data": {"task": "custom", "path": str(tmp_path / "q.jsonl"), "kind": "math"},
        "generate": {"backend": "openai", "samples_per_question": 1, "demonstrations": 0,
                     "openai": {"base_url": "URL", "model": "stub", "timeout_s": 60, "max_retries": 0}},
        "output": {"dir": str(tmp_path / "runs"), "name": "busy"},
    }))
    lock = tmp_path / "runs" / "busy" / ".lock"
    with serve(hang=True) as url:
        args = [sys.executable, "-m", "swirl_lite.cli", "generate", str(recipe), "--set", f"generate.openai.base_url={url}"]
        first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while not (lock.exists() and f"pid {first.pid}" in lock.read_text()) and time.time() < deadline:
                time.sleep(0.1)
            assert first.poll() is None, "the first run ended early"
            start = time.perf_counter()
            second = subprocess.run([*args, "--force", "--set", "generate.temperature=0.1"],
                                    capture_output=True, text=True, timeout=60)
            seconds = time.perf_counter() - start
            assert first.poll() is None, "the first run must still be going"
        finally:
            first.kill()
            first.wait()
    lines = [line for line in (second.stdout + second.stderr).splitlines() if line.strip()]
    assert second.returncode == 1, lines
    assert len(lines) == 1 and f"in use by pid {first.pid} (swirl-lite generate" in lines[0], lines
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-m", "swirl_lite.cli", "--help"], capture_output=True, timeout=60)
    start_up = time.perf_counter() - begin
    assert seconds < 2.0 + start_up, (seconds, start_up)  # refused at once, not after a wait
    assert not list((tmp_path / "runs" / "busy" / "generate").glob("shard-*")), "the second run wrote nothing"
    # the killed first run leaves no stale lock: the run proceeds now
    RunDir.for_recipe(build_recipe({"output": {"dir": str(tmp_path / "runs"), "name": "busy"}}), lock=True).unlock()


def test_the_lock_is_timed_inside_the_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "runs")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.perf_counter()
        with pytest.raises(RunBusyError, match=f"pid {holder.pid}"):
            RunDir.for_recipe(build_recipe({"output": {"dir": str(tmp_path / "runs"), "name": "busy"}}), lock=True)
        assert time.perf_counter() - start < 2.0
    finally:
        holder.kill()
        holder.wait()


def test_an_empty_folder_or_one_with_only_a_recipe_is_taken(tmp_path):
    for name, files in (("empty", []), ("old", ["recipe.yaml"])):
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        for f in files:
            (folder / f).write_text("model: {}\n")
        run = RunDir.for_recipe(build_recipe({"output": {"dir": str(tmp_path / "runs"), "name": name}}))
        assert (run / "manifest.json").is_file()
