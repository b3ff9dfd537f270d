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
    try:  # the task checks what the schema cannot: which demonstration sources and grader it takes
        from swirl_lite.tasks import get_task

        get_task(resolved.data)
    except (ValueError, ImportError) as exc:
        _fail(exc)
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
    from swirl_lite.runs import RunDir

    resolved = _load(recipe, overrides)
    try:
        run_pipeline(resolved, RunDir.for_recipe(resolved), from_stage=from_stage, force=force)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(exc)


def _stage_command(stage: str) -> Callable:
    def command(recipe: str, overrides: tuple[str, ...], force: bool, adapters: tuple[str, ...] = ()) -> None:
        from swirl_lite.pipeline import run_stage, stage_inputs
        from swirl_lite.runs import RunDir

        resolved = _load(recipe, overrides)
        if adapters:
            resolved.eval.adapters = [*resolved.eval.adapters, *adapters]
        try:
            run_dir = RunDir.for_recipe(resolved)
            if adapters and not force and run_dir.is_done(stage):
                # New adapters to add: evaluate skips the (model, task) pairs it finished before.
                from swirl_lite.stages.evaluate import run as evaluate

                run_dir.mark_done(stage, {**evaluate(resolved, run_dir), "inputs": stage_inputs(stage, resolved)})
            else:
                run_stage(stage, resolved, run_dir, force=force)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            _fail(exc)

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
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
def report(run_dirs: tuple[str, ...]) -> None:
    """Rebuild report.md/.html and metrics.json from saved trajectories; two or more runs: compare."""
    from swirl_lite.report import write_report
    from swirl_lite.report_render import print_comparison

    try:
        all_metrics = [write_report(path) for path in run_dirs]
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    print_comparison(all_metrics, run_dirs)


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--adapter", type=click.Path(exists=True, file_okay=False), help="A LoRA adapter folder, e.g. runs/NAME/train/adapter.")
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def chat(recipe: str, adapter: str | None, overrides: tuple[str, ...]) -> None:
    """Ask questions; watch each action, tool call and result stream by. 'exit' or Ctrl-D quits."""
    from swirl_lite.chat import chat as chat_loop
    from swirl_lite.chat import load_chat_llm

    resolved = _load(recipe, overrides)
    try:
        llm, demos = load_chat_llm(resolved, adapter)
        chat_loop(resolved, llm, demos=demos)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(exc)


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

    resolved = _load(recipe, overrides) if recipe else None
    try:
        cap = tuple(int(p) for p in capability.split(".")) if capability else "detect"
    except ValueError:
        cap = ()
    if cap != "detect" and len(cap) != 2:
        _fail(ValueError(f"--capability {capability}: expected MAJOR.MINOR, e.g. 7.5 (T4) or 8.0 (A100)"))
    rows = run_doctor(resolved, check_hub=not offline, capability=cap)
    console.print(summary_table("swirl-lite doctor", rows, ("check", "found", "verdict"), numeric=False))
    stages = estimate_memory(resolved, cap) if resolved else None
    if stages:
        console.print(summary_table("peak memory per stage (estimate, GB)", table_rows(stages), TABLE_COLUMNS))


@main.group()
def bench() -> None:
    """Benchmarks that print speed and memory numbers."""


def _add_tool_commands() -> None:
    # commands.py imports only click at module level, so this keeps --help instant.
    from swirl_lite.tools.commands import bench_tools, tools_group

    main.add_command(tools_group)
    bench.add_command(bench_tools)


_add_tool_commands()


@bench.command(name="rollout")
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), help="Recipe (default: embedded model, arithmetic).")
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--batch", default=16, show_default=True, help="The batch size compared with batch 1.")
@click.option("--questions", default=16, show_default=True, help="Questions (one trajectory each).")
@click.option("--max-steps", default=3, show_default=True, help="Step cap (0: the recipe's or task's).")
@click.option("--max-new-tokens", default=48, show_default=True, help="Tokens per action (0: the recipe's).")
@click.option("--threads", type=int, help="torch CPU threads (1 is steadier on a busy machine).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the numbers here.")
def bench_rollout(recipe_path, overrides, batch, questions, max_steps, max_new_tokens, threads, json_path) -> None:
    """Rollout tokens/s and trajectories/s at batch 1 vs batch B on the same questions and model."""
    import json

    from swirl_lite.bench_rollout import default_recipe, run_bench

    recipe = _load(recipe_path, overrides) if recipe_path else default_recipe()
    try:
        result = run_bench(recipe, batch, questions, max_steps or None, max_new_tokens or None, threads)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        _fail(exc)
    if json_path:
        from swirl_lite.runs import write_text_atomic

        write_text_atomic(json_path, json.dumps(result, indent=2))


@bench.command(name="judge")
@click.option("--model", "models", multiple=True, default=("embedded",), show_default=True,
              help="Judge model(s): hub id, folder or 'embedded' (repeatable); 'none' for the reference judge only.")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["logprob", "generate"]),
              default=("logprob", "generate"), show_default=True, help="Scoring modes to measure.")
@click.option("--math", "n_math", default=16, show_default=True, help="Math problems (6 labelled steps each).")
@click.option("--batch-size", default=8, show_default=True, help="Steps per forward pass, both modes.")
@click.option("--generate-limit", default=24, show_default=True, help="Steps judged in generate mode (slow).")
@click.option("--max-new-tokens", default=96, show_default=True, help="generate mode: rationale budget.")
@click.option("--seed", default=0, show_default=True, help="Seed of the math generator and subsets.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the numbers here.")
def bench_judge(models, modes, n_math, batch_size, generate_limit, max_new_tokens, seed, json_path) -> None:
    """Judge accuracy per mode and model on labelled steps, agreement with the reference judge, steps/s."""
    import json

    from swirl_lite.bench_judge import run_bench

    names = [m for m in models if m != "none"]
    try:
        rows = run_bench(names, list(modes), n_math, batch_size, generate_limit, max_new_tokens, seed)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        _fail(exc)
    if json_path:
        from swirl_lite.runs import write_text_atomic

        write_text_atomic(json_path, json.dumps(rows, indent=2))



@bench.command(name="train")
@click.option("--model", default="embedded", show_default=True, help="Policy: hub id, folder or 'embedded'.")
@click.option("--steps", default=None, type=int, help="RL steps per run (default: 2 bench, 8 --learn).")
@click.option("--4bit", "load_in_4bit", is_flag=True, help="Load policy and judge in 4-bit (needs CUDA).")
@click.option("--learn", is_flag=True, help="Run the learning check: held-out reward before vs after RL.")
@click.option("--reward", type=click.Choice(["format", "reference"]), default="format", show_default=True,
              help="--learn: the reward trained on and measured.")
@click.option("--seed", default=0, show_default=True, help="--learn: training and sampling seed.")
@click.option("--demonstrations", default=1, show_default=True,
              help="Demonstrations in each state (longer states gain more from sharing them).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the numbers here.")
@click.option("--one", type=click.Choice(["per-row", "policy-only", "shared", "separate"]), hidden=True)
def bench_train(model, steps, load_in_4bit, learn, reward, seed, demonstrations, json_path, one) -> None:
    """Samples/s and peak memory of RL training: judge shared vs separate, state shared vs per row."""
    import json

    from swirl_lite import bench_train as bt

    try:
        if one:
            result = bt.run_one(one, model, steps or 2, load_in_4bit, demonstrations)
        elif learn:
            result = bt.learn(model, steps or 8, seed, reward)
        else:
            result = bt.bench(model, steps or 2, load_in_4bit, demonstrations)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        _fail(exc)
    if json_path:
        from swirl_lite.runs import write_text_atomic

        write_text_atomic(json_path, json.dumps(result, indent=2))

@bench.command(name="gpu")
@click.option("--t4", is_flag=True, help="Cap memory at 15 GB and compute as a T4 does (refuses bf16).")
@click.option("--tiny", is_flag=True, help="2-layer models, short states: the same steps on any device.")
@click.option("--out", default="runs/gpu-check", show_default=True, help="Folder for the runs and gpu_check.json.")
def bench_gpu(t4, tiny, out) -> None:
    """Random-weight Gemma 3 1B / Llama 3.2 1B through the 4-bit recipe path: seconds, peak VRAM."""
    from swirl_lite.gpu_check import run_check

    try:
        report = run_check(out, t4=t4, tiny=tiny)
    except (ValueError, RuntimeError, OSError) as exc:
        _fail(exc)
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
