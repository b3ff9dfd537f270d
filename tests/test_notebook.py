"""The Colab notebook is valid nbformat and every shell command in it is a real CLI command."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import nbformat

from swirl_lite.cli import main

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def _swirl_commands() -> list[list[str]]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    commands = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            line = line.strip()
            if not line.startswith("!"):
                continue
            argv = shlex.split(line[1:].split("|")[-1])
            if argv and argv[0] == "swirl-lite":
                commands.append(argv[1:])
    return commands


def test_notebook_runs_the_gsm8k_recipe_and_chat():
    commands = _swirl_commands()
    names = [c[0] for c in commands]
    assert "run" in names and "chat" in names and "doctor" in names
    assert ["run", "recipes/gsm8k.yaml"] in commands


def test_every_notebook_command_parses(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    # The notebook runs in the repository after `run` has trained an adapter: recreate that layout.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(root / "recipes")
    (tmp_path / "runs" / "gsm8k" / "train" / "adapter").mkdir(parents=True)
    for argv in _swirl_commands():
        command = main.get_command(click.Context(main), argv[0])
        assert command is not None, f"notebook uses unknown command {argv[0]!r}"
        ctx = command.make_context(argv[0], list(argv[1:]))  # raises on unknown options/arguments
        recipe = ctx.params.get("recipe")
        if recipe:
            assert Path(recipe).is_file(), f"notebook names a missing recipe {recipe}"
