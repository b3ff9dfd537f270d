"""The `swirl-lite` command line. Thin: each command imports its stage lazily, so --help is instant.

The benchmarks are their own group, `swirl-lite bench` (`bench/cli.py`)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from swirl_lite.cli_helpers import DEBUG_KEY, SET_HELP, fail, load_or_exit
from swirl_lite.pipeline import ORDER, available_stages


def _run_dir(resolved):
    """The recipe's run directory, locked for as long as this command runs (a second run into it
    is refused at once, naming this process)."""
    from swirl_lite.runs import RunDir

    run_dir = RunDir.for_recipe(resolved, lock=True)
    click.get_current_context().call_on_close(run_dir.unlock)
    return run_dir


class SafeGroup(click.Group):
    """The CLI's one error boundary: whatever a command raises (a file, the disk, the network, an
    endpoint, user code) ends as one line and exit code 2 (usage) or 1 (runtime), unless
    `--debug` or SWIRL_LITE_DEBUG=1 asks for the traceback. Click's own exits pass through."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a bad option or argument: one line too, exit 2
            from swirl_lite.console import error

            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            error(f"{where}: {exc.format_message()} (see {where} --help)")
            ctx.exit(2)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - this is the boundary
            fail(exc)


def _debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[DEBUG_KEY] = True  # meta is shared by every sub-command's context
    return value


@click.group(cls=SafeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="swirl-lite")
@click.option("--debug", is_flag=True, expose_value=False, callback=_debug, is_eager=True,
              help="Show the full traceback of an error (or set SWIRL_LITE_DEBUG=1).")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show other libraries' progress bars and warnings (or set SWIRL_LITE_VERBOSE=1).")
def main(verbose: bool) -> None:
    """swirl-lite: Step-Wise RL for multi-step reasoning and tool use, on one GPU (or a CPU).

    Start with `swirl-lite run recipes/quickstart.yaml`.
    """
    import os

    if verbose:  # also for the processes a command starts (`accelerate launch ... train`)
        os.environ["SWIRL_LITE_VERBOSE"] = "1"
    if not os.environ.get("SWIRL_LITE_VERBOSE"):
        from swirl_lite.console import quiet_third_party

        quiet_third_party()


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def validate(recipe: str, overrides: tuple[str, ...]) -> None:
    """Check a recipe and print every problem at once."""
    from rich.markup import escape

    from swirl_lite.checks import review
    from swirl_lite.config import recipe_to_yaml
    from swirl_lite.console import console, error

    resolved = load_or_exit(recipe, overrides)
    # What the schema cannot see and no model or download is needed for: task, tools, files, run path.
    problems, notes = review(resolved)
    for line in problems:
        error(f"{recipe}: {line}")
    if problems:
        sys.exit(2)
    for line in notes:
        console.print(f"[dim]note: {escape(line)}[/]", soft_wrap=True)
    console.print(f"[green]ok[/] {recipe}: run directory {resolved.output.dir}/{resolved.run_name}")
    if overrides:
        console.print(recipe_to_yaml(resolved), markup=False)


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--force", is_flag=True, help="Redo every stage, even finished ones.")
@click.option("--from", "from_stage", type=click.Choice(ORDER), help="Redo this stage and all later ones.")
def run(recipe: str, overrides: tuple[str, ...], force: bool, from_stage: str | None) -> None:
    """Run every stage in order (finished stages are skipped unless the recipe changed)."""
    from swirl_lite.pipeline import run_pipeline

    resolved = load_or_exit(recipe, overrides)
    try:
        run_dir = _run_dir(resolved)
        run_pipeline(resolved, run_dir, from_stage=from_stage, force=force)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        fail(exc)
    _closing_panel(run_dir.path, recipe)


def _closing_panel(run_path, recipe: str) -> None:
    """Where the report is, the headline result in one line, and what to try next."""
    import json

    from swirl_lite.console import console
    from swirl_lite.report import closing_panel

    try:
        metrics = json.loads((run_path / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = None
    try:
        stages = json.loads((run_path / "manifest.json").read_text())["stages"]
    except (OSError, ValueError, KeyError, TypeError):
        stages = None
    console.print(closing_panel(metrics, run_path, recipe, stages))


def _stage_command(stage: str) -> Callable:
    def command(recipe: str, overrides: tuple[str, ...], force: bool, adapters: tuple[str, ...] = ()) -> None:
        from swirl_lite.pipeline import run_stage, stage_inputs

        resolved = load_or_exit(recipe, overrides)
        if adapters:
            resolved.eval.adapters = [*resolved.eval.adapters, *adapters]
        try:
            run_dir = _run_dir(resolved)
            if adapters and not force and run_dir.is_done(stage):
                # New adapters to add: evaluate skips the (model, task) pairs it finished before.
                from swirl_lite.stages.evaluate import run as evaluate

                run_dir.mark_done(stage, {**evaluate(resolved, run_dir), "inputs": stage_inputs(stage, resolved)})
            else:
                run_stage(stage, resolved, run_dir, force=force)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            fail(exc)

    command.__doc__ = f"Run the {stage} stage alone."
    command = click.option("--force", is_flag=True, help="Redo the stage even if it finished.")(command)
    if stage == "evaluate":
        command = click.option(
            "--adapter", "adapters", multiple=True, type=click.Path(file_okay=False),
            help="Also evaluate this LoRA adapter folder (repeatable).",
        )(command)
    command = click.option("--set", "overrides", multiple=True, help=SET_HELP)(command)
    command = click.argument("recipe", type=click.Path(dir_okay=False))(command)
    return click.command(name=stage)(command)


for _stage in available_stages():
    main.add_command(_stage_command(_stage))


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--seeds", default="0,1,2", show_default=True, help="Training seeds (train.seed), comma-separated.")
@click.option("--variant", "variants", multiple=True, metavar="'NAME: KEY=VALUE ...'",
              help="A setting to compare (repeatable), e.g. 'state: filter.strategy=process filter.unit=state'.")
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def sweep(recipe: str, seeds: str, variants: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Run the recipe per variant and training seed on one generation; gains with mean and range.

    The generation and the base model's evaluation are copied from any finished run of the recipe
    in output.dir with the same settings, so a later sweep or one per core beside it reuses them."""
    from swirl_lite.cli_helpers import recipe_exit
    from swirl_lite.config import RecipeError
    from swirl_lite.sweep import parse_seeds, parse_variant
    from swirl_lite.sweep import sweep as run_sweep

    resolved = load_or_exit(recipe, overrides)
    try:
        run_sweep(resolved, [parse_variant(v) for v in variants], parse_seeds(seeds))
    except RecipeError as exc:
        recipe_exit(exc)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        fail(exc)


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
def report(run_dirs: tuple[str, ...]) -> None:
    """Rebuild report.md/.html and metrics.json from saved trajectories; two or more runs: compare."""
    from swirl_lite.report import print_comparison, write_report

    try:
        all_metrics = [write_report(path) for path in run_dirs]
    except (ValueError, FileNotFoundError) as exc:
        fail(exc)
    print_comparison(all_metrics, run_dirs)


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--adapter", type=click.Path(exists=True, file_okay=False), help="A LoRA adapter folder, e.g. runs/NAME/train/adapter.")
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def chat(recipe: str, adapter: str | None, overrides: tuple[str, ...]) -> None:
    """Ask questions; watch each action, tool call and result stream by. 'exit' or Ctrl-D quits."""
    from swirl_lite.chat import chat as chat_loop
    from swirl_lite.chat import load_chat_llm

    resolved = load_or_exit(recipe, overrides)
    try:
        llm, demos = load_chat_llm(resolved, adapter)
        chat_loop(resolved, llm, demos=demos)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        fail(exc)


@main.command()
@click.argument("recipe", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--offline", is_flag=True, help="Skip the model hub reachability check.")
@click.option("--capability", help="Precision and memory for a card of this compute capability (7.5: T4).")
def doctor(recipe: str | None, overrides: tuple[str, ...], offline: bool, capability: str | None) -> None:
    """Check Python, torch, GPU, library versions and (for a recipe) whether it fits in memory."""
    from swirl_lite.console import console, summary_table
    from swirl_lite.doctor import estimate_memory, run_doctor
    from swirl_lite.memory_estimate import TABLE_COLUMNS, table_rows

    resolved = load_or_exit(recipe, overrides) if recipe else None
    try:
        cap = tuple(int(p) for p in capability.split(".")) if capability else "detect"
    except ValueError:
        cap = ()
    if cap != "detect" and len(cap) != 2:
        raise click.BadParameter("expected MAJOR.MINOR, e.g. 7.5 (T4) or 8.0 (A100)", param_hint="--capability")
    rows = run_doctor(resolved, check_hub=not offline, capability=cap)
    console.print(summary_table("swirl-lite doctor", rows, ("check", "found", "verdict"), numeric=False))
    stages = estimate_memory(resolved, cap) if resolved else None
    if stages:
        console.print(summary_table("peak memory per stage (estimate, GiB)", table_rows(stages), TABLE_COLUMNS))


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--gpu", "card", type=click.Choice(("t4", "l4", "a100", "4090", "cpu")), default="t4", show_default=True,
              help="The card to plan for (cpu: this project's 2-core machine).")
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the plan as JSON here.")
def plan(recipe: str, card: str, overrides: tuple[str, ...], json_path: str | None) -> None:
    """Predict tokens, wall time and peak memory per stage, before anything runs (no model loaded)."""
    from swirl_lite.cli_helpers import write_json
    from swirl_lite.plan import predict, print_plan

    result = predict(load_or_exit(recipe, overrides), card, name=recipe)
    print_plan(result)
    write_json(json_path, result.to_json())


@main.group(name="tools")
def tools_group() -> None:
    """Run the calculator or search tool by hand."""


@tools_group.command(name="run")
@click.argument("name")
@click.argument("queries", nargs=-1)
@click.option("--recipe", type=click.Path(dir_okay=False), help="Take the tools config and corpus from this recipe.")
@click.option("--set", "overrides", multiple=True, help="Override a recipe value, e.g. --set tools.search_top_k=3.")
@click.option("--corpus", type=click.Path(dir_okay=False), help="JSONL corpus {id, title, text} for search.")
@click.option("--top-k", type=int, help="Paragraphs per search.")
def tools_run(name: str, queries: tuple[str, ...], recipe: str | None, overrides: tuple[str, ...],
              corpus: str | None, top_k: int | None) -> None:
    """Run tool NAME (calculator, search or pkg.module:Class) on each QUERY (or stdin lines).

    Prints `QUERY -> RESULT` lines, exactly the user turns the rollout would append (METHOD.md §1).
    Example: swirl-lite tools run calculator "48 / 2" "12.5% of 80"
    """
    from swirl_lite.actions import format_result
    from swirl_lite.console import console
    from swirl_lite.tools import build_tool

    resolved = load_or_exit(recipe, overrides)
    cfg = resolved.tools
    if corpus:
        cfg = cfg.model_copy(update={"corpus": corpus})
    if top_k is not None:  # through the schema, so its range (1-20) holds here too
        from pydantic import ValidationError

        try:
            cfg = cfg.model_validate({**cfg.model_dump(), "search_top_k": top_k})
        except ValidationError as exc:
            raise click.BadParameter(exc.errors()[0]["msg"], param_hint="--top-k") from None
    task, examples = None, []
    try:
        if recipe is not None and name == "search" and not cfg.corpus:
            from swirl_lite.tasks import get_task

            data = resolved.data
            task = get_task(data)
            examples = task.load(data.split, limit=data.limit, seed=data.seed, shuffle=data.shuffle)
        elif name == "search" and not cfg.corpus:
            fail("search needs a corpus: pass --corpus FILE.jsonl or --recipe RECIPE")
        tool = build_tool(name, cfg, task, examples)
    except (ValueError, FileNotFoundError) as exc:
        fail(exc)
    lines = list(queries) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for query, result in zip(lines, tool.batch(lines), strict=True):
        console.print(format_result(query, result), markup=False, highlight=False, soft_wrap=True)


def _add_bench() -> None:
    # bench/cli.py imports only click at module level, so this keeps --help instant.
    from swirl_lite.bench.cli import bench

    main.add_command(bench)


_add_bench()

if __name__ == "__main__":
    main()
