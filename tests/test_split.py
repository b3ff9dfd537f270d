"""Split: k actions -> k sub-trajectories; states are strict prefixes; actions rebuild the trajectory."""

from __future__ import annotations

from swirl_lite.config import Recipe
from swirl_lite.runs import RunDir
from swirl_lite.schema import (
    Step,
    SubTrajectory,
    Trajectory,
    read_shards,
    split_trajectory,
    to_dict,
    write_jsonl,
)
from swirl_lite.stages import split

PROMPT = [
    {"role": "user", "content": "Solve with a calculator.\n\nQuestion: A demo question?"},
    {"role": "assistant", "content": "Demo.\n<math_exp>1 + 1</math_exp>"},  # a demonstration turn
    {"role": "user", "content": "1 + 1 -> 2"},
    {"role": "assistant", "content": "<answer>2</answer>"},
    {"role": "user", "content": "Question: Ana buys 3 pens at $4 and pays $20. Change?"},
]


def make_trajectory(tid: str = "q1#0", correct: bool = True) -> Trajectory:
    turns = [
        ("Cost first.\n<math_exp>3 * 4</math_exp>", "3 * 4 -> 12", Step(0, "", "math_exp", "3 * 4")),
        ("Change.\n<math_exp>20 - 12</math_exp>", "20 - 12 -> 8", Step(1, "", "math_exp", "20 - 12")),
        ("<answer>8</answer>", None, Step(2, "", "answer", "8")),
    ]
    messages = [dict(m) for m in PROMPT]
    for text, result, _ in turns:
        messages.append({"role": "assistant", "content": text})
        if result:
            messages.append({"role": "user", "content": result})
    return Trajectory(
        id=tid, question_id=tid.split("#")[0], sample=0, task="arithmetic", question="Ana buys 3 pens?",
        gold="8", messages=messages, prompt_len=len(PROMPT), steps=[t[2] for t in turns],
        final_answer="8", correct=correct, meta={"steps": [12, 8]},
    )


def test_k_actions_give_k_subs_with_prefix_states():
    traj = make_trajectory()
    subs = split_trajectory(traj)
    assert len(subs) == len(traj.steps) == 3
    assert [s.kind for s in subs] == ["math_exp", "math_exp", "answer"]
    assert [s.step for s in subs] == [0, 1, 2]
    assert [s.id for s in subs] == ["q1#0/0", "q1#0/1", "q1#0/2"]
    for a, b in zip(subs, subs[1:], strict=False):
        assert len(a.prompt) < len(b.prompt) and b.prompt[: len(a.prompt)] == a.prompt  # strict prefix
        assert b.prompt[len(a.prompt)] == a.completion[0]  # the action is the next turn of the next state
    assert subs[0].prompt == PROMPT  # the first state is the prompt, demonstrations included
    assert all(s.outcome is True and s.gold == "8" for s in subs)
    assert subs[0].meta["steps"] == [12, 8] and subs[0].meta["prompt_len"] == len(PROMPT)


def test_actions_rebuild_the_assistant_turns():
    traj = make_trajectory()
    subs = split_trajectory(traj)
    own = [m["content"] for m in traj.messages[traj.prompt_len :] if m["role"] == "assistant"]
    assert [s.completion[0]["content"] for s in subs] == own
    last = subs[-1]
    assert last.prompt + last.completion == traj.messages  # the last state + action is the whole chat


def test_stage_writes_trl_records_and_resumes(tmp_path):
    recipe = Recipe.model_validate({"output": {"dir": str(tmp_path), "name": "r"}})
    run = RunDir.for_recipe(recipe)
    rows = [to_dict(make_trajectory("q1#0")), to_dict(make_trajectory("q2#0", correct=False)), {"id": 5}]
    write_jsonl(run / "generate" / "shard-00000.jsonl", rows)
    summary = split.run(recipe, run)
    assert summary["trajectories"] == 2 and summary["sub_trajectories"] == 6 and summary["skipped"] == 1
    records = list(read_shards(run / "split"))
    assert len(records) == 6 and {"prompt", "completion"} <= set(records[0])
    assert SubTrajectory.from_dict(records[3]).outcome is False
    shard = run / "split" / "shard-00000.jsonl"
    before = shard.stat().st_mtime_ns
    assert split.run(recipe, run)["sub_trajectories"] == 6  # finished shard counted, not redone
    assert shard.stat().st_mtime_ns == before


def test_filter_counts_unreadable_records(tmp_path):
    from swirl_lite.stages import filter as filter_stage

    recipe = Recipe.model_validate({"output": {"dir": str(tmp_path), "name": "r"}, "filter": {"strategy": "none"}})
    run = RunDir.for_recipe(recipe)
    write_jsonl(run / "generate" / "shard-00000.jsonl", [to_dict(make_trajectory("q1#0"))])
    split.run(recipe, run)
    with open(run / "split" / "shard-00000.jsonl", "a") as fh:
        fh.write('{"id": 5}\n')
    summary = filter_stage.run(recipe, run)
    assert summary["sub_trajectories_out"] == 3
    assert summary["skipped"] == {"unreadable sub-trajectory (TypeError)": 1}
