"""Split: step-wise decomposition of trajectories into sub-trajectories (METHOD.md §2).

A trajectory with k actions becomes k sub-trajectories. Sub-trajectory i has the state s_i (every
chat message before the i-th assistant turn: the prompt, earlier actions and their tool results)
and the action a_i (that turn). The records are TRL's conversational prompt/completion format, so
the train stage feeds them to TRL as they are.

Input:  run/generate/*.jsonl  (Trajectory records, sharded)
Output: run/split/*.jsonl     (SubTrajectory records, one output shard per input shard)
Run alone: `swirl-lite split RECIPE`. Resumes shard by shard (a finished shard is not redone).

Each record carries the trajectory's outcome (graded correctness) and gold, and in `meta` the task's
gold material (gold steps, paragraphs) plus `question` and `prompt_len` (where the trajectory's own
turns start, after any demonstrations) for the judges. Departure: none; the paper splits the same way.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from swirl_lite.config import Recipe
from swirl_lite.console import console, progress, summary_table
from swirl_lite.runs import RunDir
from swirl_lite.schema import (
    SubTrajectory,
    Trajectory,
    read_jsonl,
    shard_paths,
    split_trajectory,
    write_jsonl,
)


def _split_shard(rows: list[dict], skipped: Counter) -> tuple[list[SubTrajectory], int]:
    subs: list[SubTrajectory] = []
    n = 0
    for row in rows:
        try:
            traj = Trajectory.from_dict(row)
        except (TypeError, ValueError, KeyError) as exc:
            skipped[f"unreadable trajectory ({type(exc).__name__})"] += 1
            continue
        parts = split_trajectory(traj)
        if not parts:
            skipped["no actions"] += 1
            continue
        subs.extend(parts)
        n += 1
    return subs, n


def run(recipe: Recipe, run_dir: RunDir) -> dict[str, Any]:
    """Split every generate shard into run/split/ (same shard names); returns the summary."""
    shards = shard_paths(run_dir / "generate")
    if not shards:
        raise FileNotFoundError(f"{run_dir / 'generate'}: no trajectories; run `swirl-lite generate` first")
    out_dir = run_dir / "split"
    kinds: Counter = Counter()
    skipped: Counter = Counter()
    n_traj = n_subs = resumed = 0
    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("split", total=len(shards))
        for shard in shards:
            target = out_dir / shard.name
            if target.exists():  # finished earlier: count it, do not redo it
                subs = [SubTrajectory.from_dict(d) for d in read_jsonl(target)]
                n = len({s.trajectory_id for s in subs})
                resumed += 1
            else:
                subs, n = _split_shard(list(read_jsonl(shard)), skipped)
                write_jsonl(target, subs)
            n_traj += n
            n_subs += len(subs)
            kinds.update(s.kind for s in subs)
            bar.advance(task)
    rows: list[tuple] = [("trajectories", n_traj), ("sub-trajectories", n_subs)]
    rows += [(f"  {kind}", count) for kind, count in sorted(kinds.items())]
    rows += [(f"skipped: {why}", count) for why, count in skipped.items()]
    rows += [("shards (resumed)", f"{len(shards)} ({resumed})"), ("seconds", time.perf_counter() - start)]
    console.print(summary_table("split", rows))
    return {"trajectories": n_traj, "sub_trajectories": n_subs, "kinds": dict(kinds), "skipped": sum(skipped.values())}
