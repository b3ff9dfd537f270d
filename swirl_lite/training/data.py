"""The training rows: kept sub-trajectories read from `run_dir/filter`, checked, measured, ordered.

A row is one state s_i (chat messages, TRL's conversational `prompt`) with the action a_i that was
kept for it (`completion`, used by SFT only; RL samples fresh actions). `sub` carries the whole
SubTrajectory as JSON so the reward can rebuild it without arrow having to type `gold`/`meta`.

Order: the longest states form the first batch, so an out-of-memory error shows on step one rather
than hours in; the rest follow in a seeded shuffle, a fresh one each pass over the data.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from swirl_lite.schema import SubTrajectory, read_jsonl, shard_paths, to_dict


@dataclass
class TrainRows:
    rows: list[dict]  # {"prompt", "completion", "sub", "length"}
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _valid_messages(messages: object) -> bool:
    return (
        isinstance(messages, list)
        and bool(messages)
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages)
    )


def _good(verdict: object, threshold: float) -> bool:
    score = verdict.get("score") if isinstance(verdict, dict) else None
    return isinstance(score, (int, float)) and score >= threshold


def read_states(folder: str | Path, good_actions_above: float | None = None) -> TrainRows:
    """Every kept sub-trajectory under `folder` (*.jsonl); malformed records are counted, not fatal.

    `good_actions_above` (SFT after `filter.unit: state`, which keeps states whose own action may be
    BAD): only records whose verdict scores at least this are rows, the others are counted skips,
    so SFT never imitates an action the judge rated BAD."""
    paths = shard_paths(folder)
    if not paths:
        raise FileNotFoundError(f"{folder}: no kept sub-trajectories (*.jsonl); run the filter stage first")
    out = TrainRows([])
    for path in paths:
        for record in read_jsonl(path):
            try:
                sub = SubTrajectory.from_dict(record)
            except (TypeError, ValueError):
                out.skip("bad_record")
                continue
            if not _valid_messages(sub.prompt) or not _valid_messages(sub.completion):
                out.skip("bad_messages")
                continue
            if good_actions_above is not None and not _good(record.get("verdict"), good_actions_above):
                out.skip("action judged BAD (filter.unit: state)")
                continue
            row_sub = {k: v for k, v in record.items() if k != "verdict"}
            out.rows.append({"prompt": sub.prompt, "completion": sub.completion, "sub": json.dumps(row_sub)})
    if not out.rows:
        raise ValueError(f"{folder}: no usable sub-trajectories ({out.skipped or 'all files empty'})")
    return out


def add_solved_states(data: TrainRows, task, every_step: bool = False) -> int:
    """`train.solved_states`: for every question among the rows, the state after its gold
    solution's tool calls, where only the answer is left; returns how many were added.
    `every_step` (`train.gold_states`): every state along the gold solution after its first tool
    call, each with the gold solution's next action, the solved state last.

    Departure from the paper (its RL states are the filtered trajectories' only). A small policy's
    own trajectories rarely reach the solved state: in learn-cpu-search 24 of 279 states had every
    gold paragraph read, and 60 GRPO steps on them taught the 135M policy to search to the step cap
    instead of answering (README "Learn to search on CPU"). RL trains on states, not on the data's
    actions, so a gold state is a legitimate input: the policy samples its own actions there and the
    judge scores them like any other. A state is the question's own prompt (the same instructions and
    demonstrations its trajectories had) followed by the gold steps as turns (`tasks.prompts`); the
    completion kept for it is the gold answer. Questions whose task gives no gold solution
    (`Task.gold_solution`) are counted skips."""
    from dataclasses import replace

    from swirl_lite.tasks.base import Example
    from swirl_lite.tasks.prompts import action_text, demo_messages

    first: dict[str, SubTrajectory] = {}
    for row in data.rows:
        sub = SubTrajectory.from_dict(json.loads(row["sub"]))
        first.setdefault(sub.question_id, sub)
    added = 0
    for qid, sub in first.items():
        meta = sub.meta
        example = Example(qid, str(meta.get("question", "")), str(sub.gold), list(meta.get("aliases") or []), meta)
        gold = task.gold_solution(example) if hasattr(task, "gold_solution") else None
        if gold is None or len(gold.steps) < 2 or gold.steps[-1].tag != "answer":
            data.skip(f"no gold solution (train.{'gold' if every_step else 'solved'}_states)")
            continue
        prompt_len = int(meta.get("prompt_len") or len(sub.prompt))
        last = len(gold.steps) - 1  # the solved state: every tool call done
        for step in range(1, last + 1) if every_step else (last,):
            state = [dict(m) for m in sub.prompt[:prompt_len]] + demo_messages(replace(gold, steps=gold.steps[:step]))
            completion = [{"role": "assistant", "content": action_text(gold.steps[step])}]
            gold_sub = SubTrajectory(
                id=f"{qid}#gold/{step}", trajectory_id=f"{qid}#gold", question_id=qid, step=step,
                kind=gold.steps[step].tag, prompt=state, completion=completion, task=sub.task,
                outcome=True, gold=sub.gold, meta=meta,
            )
            data.rows.append({"prompt": state, "completion": completion, "sub": json.dumps(to_dict(gold_sub))})
            added += 1
    return added


def measure(data: TrainRows, tokenizer, max_prompt_length: int) -> TrainRows:
    """Add each state's token length; drop (and count) states longer than `max_prompt_length`.

    Cutting a chat state would remove its instructions or question, so an over-long state is skipped
    rather than truncated. Its count shows in the stage summary.
    """
    kept = TrainRows([], dict(data.skipped))
    for row in data.rows:
        ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        row = {**row, "length": len(ids)}
        if row["length"] > max_prompt_length:
            kept.skip("state_too_long")
            continue
        kept.rows.append(row)
    if not kept.rows:
        raise ValueError(
            f"every state is longer than train.max_prompt_length={max_prompt_length} tokens; raise it"
        )
    return kept


def longest_first(lengths: list[int], first_batch: int, seed: int, total: int) -> list[int]:
    """Row indices for `total` draws: the `first_batch` longest rows, then seeded shuffles.

    The first pass is the longest rows then the rest shuffled; each later pass is a fresh shuffle of
    all rows (seed + pass number), so repeated epochs do not replay one order.
    """
    n = len(lengths)
    by_length = sorted(range(n), key=lambda i: (-lengths[i], i))
    head, rest = by_length[:first_batch], by_length[first_batch:]
    random.Random(seed).shuffle(rest)
    order = head + rest
    epoch = 1
    while len(order) < total:
        again = list(range(n))
        random.Random(seed + epoch).shuffle(again)
        order.extend(again)
        epoch += 1
    return order[: max(total, n)]


def ordered_dataset(rows: list[dict], order: list[int], columns: tuple[str, ...]):
    """A datasets.Dataset of `rows` in `order`, keeping only `columns`."""
    from datasets import Dataset

    return Dataset.from_list([{c: rows[i][c] for c in columns} for i in order])
