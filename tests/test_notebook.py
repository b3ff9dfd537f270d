"""The Colab notebook: valid nbformat, every `swirl-lite` line a real command, and its cells' logic
(`swirl_lite/notebook.py`) run offline: the fetch-and-install cell in dry-run on a local folder,
the install keeping torch, the Drive mount falling back to local when there is no Drive."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
import nbformat
import pytest

from swirl_lite import notebook as nb
from swirl_lite.cli import main

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "colab.ipynb"


def _cells() -> list[str]:
    book = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(book)
    return [cell.source for cell in book.cells if cell.cell_type == "code"]


def _settings() -> dict:
    namespace: dict = {}
    exec(_cells()[0], namespace)  # the first code cell holds only the settings
    return namespace


def _swirl_commands(values: dict) -> list[list[str]]:
    """Every `!swirl-lite ...` line, with IPython's {NAME} filled in from `values`."""
    commands = []
    for source in _cells():
        for line in source.splitlines():
            line = line.strip()
            if line.startswith("!swirl-lite"):
                commands.append(shlex.split(line[1:].format(**values))[1:])
    return commands


def test_settings_say_where_the_package_comes_from_and_that_it_is_unpublished():
    settings = _settings()
    assert settings["SOURCE"] == nb.DEFAULT_SOURCE and settings["USE_DRIVE"] is True
    assert settings["RECIPE"] == "recipes/gsm8k.yaml" and settings["GPU"] == "t4"
    first = _cells()[0].splitlines()[0]
    assert "NOT published" in first
    text = NOTEBOOK.read_text()
    assert "not published yet" in text


def test_notebook_plans_before_it_runs_the_t4_recipe_then_reports_and_chats():
    values = {**_settings(), "OUT": "runs", "ADAPTER": "runs/gsm8k/train/adapter"}
    commands = _swirl_commands(values)
    names = [c[0] for c in commands]
    assert names.index("plan") < names.index("run") < names.index("chat")
    assert ["plan", "recipes/gsm8k.yaml", "--gpu", "t4"] in commands
    assert ["run", "recipes/gsm8k.yaml", "--set", "output.dir=runs"] in commands
    assert any("report.html" in source for source in _cells())


def test_every_notebook_command_parses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    (tmp_path / "runs" / "gsm8k" / "train" / "adapter").mkdir(parents=True)
    values = {**_settings(), "OUT": "runs", "ADAPTER": "runs/gsm8k/train/adapter"}
    for argv in _swirl_commands(values):
        command = main.get_command(click.Context(main), argv[0])
        assert command is not None, f"notebook uses unknown command {argv[0]!r}"
        ctx = command.make_context(argv[0], list(argv[1:]))  # raises on unknown options/arguments
        recipe = ctx.params.get("recipe")
        if recipe:
            assert Path(recipe).is_file(), f"notebook names a missing recipe {recipe}"


def test_fetch_and_install_cell_in_dry_run_copies_a_folder_and_prints_the_pip_command(tmp_path, monkeypatch, capsys):
    """The notebook's own second code cell, with SOURCE a local folder (this repository) and the
    install in dry-run: the folder is copied, nothing is installed, the pip command is printed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    repo = tmp_path / "swirl-lite"
    namespace = {**_settings(), "SOURCE": str(ROOT), "REPO": str(repo), "INSTALL_DRY_RUN": True}
    exec(_cells()[1], namespace)
    out = capsys.readouterr().out
    assert (repo / "swirl_lite" / "notebook.py").is_file() and not (repo / ".git").exists()
    assert "dry run: nothing installed" in out
    pip = next(line for line in out.splitlines() if line.startswith("$ "))
    assert "pip install" in pip and f"{repo}[unsloth]" in pip
    assert str(repo / "swirl_lite" / "data" / "constraints-gpu.txt") in pip
    torch_version = nb.versions(["torch"])["torch"]
    assert f"keeping torch {torch_version}" in out and "keep-torch.txt" in pip


def test_fetch_cell_says_the_default_address_is_unpublished_when_the_clone_fails(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {**_settings(), "SOURCE": str(tmp_path / "no-such-repo.git"), "REPO": str(tmp_path / "r")}
    with pytest.raises(SystemExit) as exc:
        exec(_cells()[1], namespace)
    assert "not published yet" in str(exc.value) and "SOURCE" in str(exc.value)


def test_install_keeps_torch_and_says_what_it_changed(monkeypatch, capsys):
    ran = []
    states = iter([{"torch": "2.8.0+cu126", "transformers": "4.57.1", "unsloth": None},
                   {"torch": "2.8.0+cu126", "transformers": "5.17.0", "unsloth": "2026.10.9"}])
    monkeypatch.setattr(nb, "versions", lambda names=nb.STACK: next(states))
    lines = nb.install(ROOT, run=lambda command, check: ran.append(command))
    assert len(ran) == 1 and ran[0][-2:] == ["-c", str(Path(nb.tempfile.gettempdir()) / "swirl-lite-keep-torch.txt")]
    assert (Path(nb.tempfile.gettempdir()) / "swirl-lite-keep-torch.txt").read_text() == "torch==2.8.0+cu126\n"
    assert lines == ["transformers: 4.57.1 -> 5.17.0", "unsloth: not installed -> 2026.10.9", "torch: kept 2.8.0+cu126"]
    assert "torch: kept 2.8.0+cu126" in capsys.readouterr().out


def test_a_changed_torch_is_said_loudly():
    lines = nb.changes({"torch": "2.8.0+cu126"}, {"torch": "2.9.0"})
    assert lines[-1].startswith("torch: CHANGED 2.8.0+cu126 -> 2.9.0")


def test_install_refuses_a_folder_that_is_not_the_repository(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a swirl-lite repository"):
        nb.install(tmp_path, dry_run=True)


def test_drive_absent_falls_back_to_local_with_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "google.colab", None)  # importing it raises ImportError
    assert nb.output_dir(True) == "runs"
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "no Google Drive here" in out[0]


def test_drive_mounted_keeps_output_dir_on_drive(tmp_path, capsys):
    mounted = []
    path = nb.output_dir(True, mount_point=str(tmp_path), mount=mounted.append)
    assert mounted == [str(tmp_path)] and path == str(tmp_path / "MyDrive" / "swirl-lite" / "runs")
    assert Path(path).is_dir() and "resume" in capsys.readouterr().out


def test_a_failed_mount_or_no_drive_asked_stays_local(tmp_path, capsys):
    def refuse(point):
        raise RuntimeError("mount failed")

    assert nb.output_dir(True, mount_point=str(tmp_path), mount=refuse) == "runs"
    assert "did not mount" in capsys.readouterr().out
    assert nb.output_dir(False) == "runs" and "USE_DRIVE is off" in capsys.readouterr().out


def test_a_failed_pip_is_one_line_naming_the_torch_it_kept(monkeypatch):
    def fail(command, check):
        raise nb.subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(nb, "versions", lambda names=nb.STACK: {"torch": "2.8.0+cu126"})
    with pytest.raises(SystemExit) as exc:
        nb.install(ROOT, run=fail)
    assert "pip failed (exit 1" in str(exc.value) and "2.8.0+cu126" in str(exc.value)
