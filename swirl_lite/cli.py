"""The `swirl-lite` command line. Thin: each command imports its stage lazily, so --help is instant."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from swirl_lite.pipeline import ORDER, available_stages

SET_HELP = "Override a recipe value, e.g. --set generate.temperature=0.7 (repeatable)."


def _load(recipe_path: str, overrides: tuple[str, ...]):
    from swirl_lite.config import RecipeError, load_recipe
    from swirl_lite.console import error

    try:
        return load_recipe(recipe_path, overrides)
    except RecipeError as exc:
        for line in exc.errors:
            error(line)
        sys.exit(2)


def _fail(exc: Exception) -> None:
    from swirl_lite.console import error

    error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="swirl-lite")
def main() -> None:
    """swirl-lite: Step-Wise RL for multi-step reasoning and tool use, on one GPU (or a CPU).

    Start with `swirl-lite run recipes/quickstart.yaml`.
    """


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def validate(recipe: str, overrides: tuple[str, ...]) -> None:
    """Check a recipe and print every problem at once."""
    from swirl_lite.config import recipe_to_yaml
    from swirl_lite.console import console

    resolved = _load(recipe, overrides)
    console.print(f"[green]ok[/] {recipe}: run directory {resolved.output.dir}/{resolved.run_name}")
    if overrides:
        console.print(recipe_to_yaml(resolved), markup=False)


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--force", is_flag=True, help="Redo every stage, even finished ones.")
@click.option("--from", "from_stage", type=click.Choice(ORDER), help="Redo this stage and all later ones.")
def run(recipe: str, overrides: tuple[str, ...], force: bool, from_stage: str | None) -> None:
    """Run every stage in order (finished stages are skipped)."""
    from swirl_lite.pipeline import run_pipeline
    from swirl_lite.runs import RunDir

    resolved = _load(recipe, overrides)
    try:
        run_pipeline(resolved, RunDir.for_recipe(resolved), from_stage=from_stage, force=force)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(exc)


def _stage_command(stage: str) -> Callable:
    def command(recipe: str, overrides: tuple[str, ...], force: bool) -> None:
        from swirl_lite.pipeline import run_stage
        from swirl_lite.runs import RunDir

        resolved = _load(recipe, overrides)
        try:
            run_stage(stage, resolved, RunDir.for_recipe(resolved), force=force)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            _fail(exc)

    command.__doc__ = f"Run the {stage} stage alone."
    command = click.option("--force", is_flag=True, help="Redo the stage even if it finished.")(command)
    command = click.option("--set", "overrides", multiple=True, help=SET_HELP)(command)
    command = click.argument("recipe", type=click.Path(dir_okay=False))(command)
    return click.command(name=stage)(command)


for _stage in available_stages():
    main.add_command(_stage_command(_stage))


@main.group()
def bench() -> None:
    """Benchmarks that print speed and memory numbers."""


if __name__ == "__main__":
    main()
