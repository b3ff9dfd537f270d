"""`swirl-lite bench rollout`: the same questions through the rollout engine at batch 1 and batch B.

Both runs use the same model (loaded once), the same questions, prompts, step cap and sampling, and
per-trajectory seeds, so they do the same work: the bench checks that both produced the same turns
(they do up to float noise of batched matmuls) and prints completion tokens/s, trajectories/s and the
speed-up. Without `--recipe` it runs the embedded SmolLM2-135M on the built-in arithmetic task
(`DEFAULT_RECIPE`), with any `--set` overrides applied to that.

`--arch gemma3|llama` swaps the model for a random-weight one of that architecture at the benches'
size (`architectures.py`). Random weights seldom emit an action tag, so every action runs its whole
token budget: the numbers are about the engine, not the model. `kv_reuse` says whether rows reused
their own cache from the step before (the hf backend; false elsewhere).

Numbers from a shared machine are noisy: other processes compete for the cores. `--threads 1`
gives steadier numbers there (torch's default thread pool spins badly when oversubscribed).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from swirl_lite.config import Recipe
from swirl_lite.console import console, summary_table

DEFAULT_RECIPE = {"model": {"name": "embedded"}, "data": {"task": "arithmetic", "split": "test"}}


def run_bench(
    recipe: Recipe,
    batch: int = 16,
    questions: int = 16,
    max_steps: int | None = 3,
    max_new_tokens: int | None = 48,
    threads: int | None = None,
) -> dict[str, Any]:
    """Time the engine at batch 1 and at `batch`; print a table and return the numbers."""
    from swirl_lite.backends import demonstrations_for, make_llm, params_from_recipe
    from swirl_lite.tasks import get_task
    from swirl_lite.tools import build_tools

    if threads:
        import torch

        torch.set_num_threads(threads)
    task = get_task(recipe.data)
    examples = task.load(recipe.data.split, questions, recipe.data.seed, recipe.data.shuffle)
    if not examples:
        raise ValueError(f"data: no questions loaded from task {task.name!r} split {recipe.data.split!r}")
    tools = build_tools(list(recipe.tools.use) or list(task.default_tools), recipe.tools, task, examples)
    params = params_from_recipe(recipe)
    if max_new_tokens:
        params.max_new_tokens = max_new_tokens
    steps = max_steps or recipe.generate.max_steps or task.max_steps
    console.print(f"bench rollout: loading {recipe.model.name} ({recipe.generate.backend}) ...")
    llm = make_llm(recipe)
    demos = demonstrations_for(recipe, llm)
    console.print(
        f"{len(examples)} {task.name} questions, max {steps} steps, {params.max_new_tokens} tokens per action, "
        f"temperature {params.temperature}, {demos} demonstrations"
    )
    runs = [_timed(llm, task, tools, examples, b, steps, params, demos) for b in (1, batch)]
    reused = getattr(llm, "reused_tokens", 0)  # prompt tokens the hf backend took from its caches
    one, many = runs
    same = sum(one["turns"][k] == many["turns"].get(k) for k in one["turns"])
    ratio = many["tokens_per_s"] / one["tokens_per_s"] if one["tokens_per_s"] else float("nan")
    rows = [
        (f"batch {r['batch']}", r["trajectories"], r["tokens"], r["seconds"], r["tokens_per_s"], r["traj_per_s"])
        for r in runs
    ]
    console.print(summary_table(
        f"rollout throughput ({recipe.model.name}, {recipe.generate.backend})", rows,
        ("", "trajectories", "tokens", "seconds", "tokens/s", "trajectories/s"),
    ))
    console.print(f"batch {batch} / batch 1: [bold]{ratio:.2f}x[/] tokens/s; identical trajectories: "
                  f"{same}/{len(one['turns'])}; KV reuse: {'yes' if reused else 'no'} ({reused} prompt tokens)")
    result = {k: v for k, v in many.items() if k != "turns"}
    return {
        "model": recipe.model.name, "backend": recipe.generate.backend, "task": task.name,
        "questions": len(examples), "max_steps": steps, "max_new_tokens": params.max_new_tokens,
        "batch_1": {k: v for k, v in one.items() if k != "turns"}, f"batch_{batch}": result,
        "ratio_tokens_per_s": round(ratio, 3), "identical_trajectories": same,
        "kv_reuse": reused > 0, "reused_prompt_tokens": reused,
    }


@contextlib.contextmanager
def with_arch(recipe: Recipe, arch: str | None) -> Iterator[Recipe]:
    """`recipe` with its model swapped for a random-weight `arch` model built in a temporary folder
    (removed on exit); `recipe` itself without `arch`."""
    if arch is None:
        yield recipe
        return
    from swirl_lite.architectures import build_model

    folder = tempfile.mkdtemp(prefix=f"swirl-bench-{arch}-")
    try:
        console.print(f"bench rollout: building a random-weight {arch} model (bench size) ...")
        path = str(build_model(arch, folder, "bench"))
        yield recipe.model_copy(update={"model": recipe.model.model_copy(update={"name": path})})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _timed(llm, task, tools, examples, batch: int, steps: int, params, demos: int) -> dict[str, Any]:
    from swirl_lite.console import progress
    from swirl_lite.rollout import rollout

    jobs = [(ex, 0) for ex in examples]
    trajs = []
    with progress() as bar:
        handle = bar.add_task(f"batch {batch}", total=len(jobs))
        start = time.perf_counter()
        for traj in rollout(llm, task, tools, jobs, max_steps=steps, batch_size=batch, params=params,
                            demonstrations=demos):
            trajs.append(traj)
            bar.advance(handle)
        seconds = time.perf_counter() - start
    tokens = sum(t.completion_tokens for t in trajs)
    return {
        "batch": batch,
        "trajectories": len(trajs),
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 2),
        "traj_per_s": round(len(trajs) / seconds, 4),
        "turns": {t.id: [s.text for s in t.steps] for t in trajs},
    }
