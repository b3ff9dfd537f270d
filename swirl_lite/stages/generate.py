"""Generate: K multi-step trajectories per question, sampled from the policy with tools (METHOD.md §1).

Input:  the recipe's task and data (`data.*`), tools (`tools.*`), model and backend (`generate.*`).
Output: run/generate/shard-NNNNN.jsonl, one `schema.Trajectory` per line (question id, sample index,
        full messages, steps with action/tool/query/result, final answer, gold, graded correctness,
        token counts, malformed-action counts, seconds, and the example's gold `meta`). Load them
        with `datasets.load_dataset("json", data_files=".../generate/*.jsonl")`.
Run alone: `swirl-lite generate RECIPE`.

Resumable: each shard is written under a temporary name and renamed when complete, and a rerun
skips every (question, sample) already in a finished shard, so after a SIGKILL at any moment the
rerun ends with every job exactly once (work in flight and in the unwritten buffer is redone).
A shard is written every `generate.shard_size` trajectories and at least every five minutes.

Demonstrations: `generate.demonstrations`, or when unset by model size (`backends.params_count_demos`:
2 under 1B parameters, 1 under 4B, 0 above, 1 when unknown). Departures from the paper: the policy
is a small model, so it sees worked demonstrations; malformed turns get a reminder (`rollout.py`).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from swirl_lite.config import Recipe
from swirl_lite.console import console, progress, skips, summary_table
from swirl_lite.runs import RunDir
from swirl_lite.schema import Trajectory, read_jsonl, shard_paths, write_jsonl

FLUSH_SECONDS = 300.0
_SHARD = re.compile(r"shard-(\d+)\.jsonl$")


def scan(folder: Path) -> tuple[list[dict], int]:
    """Records of the finished shards and the next free shard number; stale temp files removed."""
    records: list[dict] = []
    last = -1
    for stale in folder.glob(".shard-*.tmp-*") if folder.is_dir() else ():
        stale.unlink(missing_ok=True)  # a half-written shard of a killed run: its jobs are redone
    for path in shard_paths(folder):
        match = _SHARD.search(path.name)
        if match:
            last = max(last, int(match.group(1)))
        records.extend(read_jsonl(path))
    return records, last + 1


def run(recipe: Recipe, run_dir: RunDir, llm: Any = None) -> dict[str, Any]:
    """Generate every missing (question, sample) trajectory; returns the summary. `llm` overrides
    the recipe's backend (tests pass a ScriptedLLM; chat and eval reuse a loaded model)."""
    from swirl_lite.backends import demonstrations_for, make_llm, params_from_recipe
    from swirl_lite.rollout import rollout
    from swirl_lite.tasks import get_task
    from swirl_lite.tools import run_tools

    g = recipe.generate
    task = get_task(recipe.data)
    examples = task.load(recipe.data.split, recipe.data.limit, recipe.data.seed, recipe.data.shuffle)
    skipped = Counter(getattr(task, "skip_reasons", None) or {})  # rows the task could not use, by reason
    if not examples:
        raise ValueError(f"data: no questions loaded from task {task.name!r} split {recipe.data.split!r}"
                         + (f": {skips(skipped)}" if skipped else ""))
    unique = list({ex.id: ex for ex in examples}.values())
    skipped["repeated id"] += len(examples) - len(unique)
    skipped = +skipped  # drop zero counts
    if skipped:
        console.print(f"[yellow]generate: {skips(skipped)}[/]")
    tools = run_tools(recipe, task, unique)
    folder = run_dir / "generate"
    folder.mkdir(parents=True, exist_ok=True)
    records, next_shard = scan(folder)
    done = {r.get("id") for r in records}
    jobs = [(ex, s) for ex in unique for s in range(g.samples_per_question) if f"{ex.id}#{s}" not in done]
    total = len(unique) * g.samples_per_question
    foreign = len(done - {f"{ex.id}#{s}" for ex in unique for s in range(g.samples_per_question)})
    if foreign:
        console.print(f"[yellow]generate: {foreign} written trajectories are not jobs of this recipe "
                      "(data or samples changed?); kept. Use --force to start over.[/]")
    if records:
        console.print(f"generate: resuming, {total - len(jobs)} of {total} trajectories already written")
    stats = Counter()
    started = time.time()
    if jobs:
        owned, llm = llm is None, llm if llm is not None else make_llm(recipe)
        demos = demonstrations_for(recipe, llm)
        max_steps = g.max_steps or task.max_steps
        console.print(
            f"generate: {len(jobs)} trajectories ({len(unique)} questions x {g.samples_per_question}), "
            f"backend {getattr(llm, 'name', g.backend)}, batch {g.batch_size}, "
            f"max {max_steps} steps, {demos} demonstration{'' if demos == 1 else 's'}"
        )
        writer = _ShardWriter(folder, next_shard, g.shard_size)
        with progress(tok="{task.fields[tok]} tok/s", calls="{task.fields[calls]} calls/s") as bar:
            handle = bar.add_task("trajectories", total=total, completed=total - len(jobs), tok="-", calls="-")

            def on_step(traj: Trajectory, step) -> None:
                stats["tokens"] += step.completion_tokens
                stats["tool_calls"] += step.tool is not None
                elapsed = max(time.time() - started, 1e-9)
                bar.update(handle, tok=f"{stats['tokens'] / elapsed:.1f}", calls=f"{stats['tool_calls'] / elapsed:.2f}")

            for traj in rollout(
                llm, task, tools, jobs, max_steps=max_steps, batch_size=g.batch_size,
                params=params_from_recipe(recipe), demonstrations=demos, on_step=on_step,
                max_malformed_in_a_row=g.max_malformed_in_a_row,
            ):
                records.append(writer.add(traj))
                bar.advance(handle)
            writer.flush()
        if owned:  # a vllm engine keeps 85% of the GPU until closed
            from swirl_lite.memory import release

            release(llm)
    seconds = time.time() - started
    summary = summarize(records, len(unique), stats["tokens"] / seconds if jobs and seconds > 0 else None)
    summary["shards"] = len(shard_paths(folder))
    summary["skipped"] = dict(skipped)
    _print_summary(summary)
    return summary


class _ShardWriter:
    """Buffers finished trajectories and writes them as atomic shards."""

    def __init__(self, folder: Path, index: int, size: int):
        self.folder, self.index, self.size = folder, index, size
        self.buffer: list[dict] = []
        self.last = time.time()

    def add(self, traj: Trajectory) -> dict:
        from swirl_lite.schema import to_dict

        record = to_dict(traj)
        self.buffer.append(record)
        if len(self.buffer) >= self.size or time.time() - self.last > FLUSH_SECONDS:
            self.flush()
        return record

    def flush(self) -> None:
        if self.buffer:
            write_jsonl(self.folder / f"shard-{self.index:05d}.jsonl", self.buffer)
            self.index += 1
            self.buffer = []
        self.last = time.time()


def summarize(records: list[dict], questions: int, tokens_per_s: float | None) -> dict[str, Any]:
    """The stage summary over every written trajectory (this run's and earlier runs')."""
    n = len(records)
    answered = sum(r.get("stop_reason") == "answer" for r in records)
    correct = sum(bool(r.get("correct")) for r in records)
    malformed = sum(sum((r.get("malformed") or {}).values()) for r in records)
    steps = sum(len(r.get("steps") or []) for r in records)
    reasons = Counter(r.get("stop_reason") or "?" for r in records)
    return {
        "questions": questions,
        "trajectories": n,
        "mean_steps": round(steps / n, 3) if n else 0.0,
        "answered": round(answered / n, 4) if n else 0.0,
        "correct": round(correct / n, 4) if n else 0.0,
        "malformed_actions": malformed,
        "stop_reasons": dict(reasons),
        "tokens_per_s": round(tokens_per_s, 2) if tokens_per_s is not None else None,
    }


def _print_summary(s: dict[str, Any]) -> None:
    rows = [
        ("questions", s["questions"]),
        ("trajectories", s["trajectories"]),
        ("mean steps", s["mean_steps"]),
        ("% answered", f"{100 * s['answered']:.1f}"),
        ("% correct", f"{100 * s['correct']:.1f}"),
        ("malformed actions", s["malformed_actions"]),
        ("stop reasons", ", ".join(f"{k} {v}" for k, v in sorted(s["stop_reasons"].items()))),
        ("tokens/s (this run)", s["tokens_per_s"]),
        ("rows skipped", skips(s.get("skipped") or {})),
    ]
    console.print(summary_table("generate", rows))
