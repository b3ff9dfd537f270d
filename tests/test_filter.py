"""Filter: the four strategies on hand-made trajectories with scripted verdicts, and the stage run."""

from __future__ import annotations

import pytest

from swirl_lite.config import Recipe
from swirl_lite.runs import RunDir
from swirl_lite.schema import SubTrajectory, Verdict, read_shards, to_dict, write_jsonl
from swirl_lite.stages import filter as filter_stage
from swirl_lite.stages.filter import filter_subs


def subs_of(tid: str, actions: list[str], correct: bool, steps=(12, 8)) -> list[SubTrajectory]:
    prompt = [{"role": "user", "content": "Instructions.\n\nQuestion: Ana buys 3 pens at $4 and pays $20. Change?"}]
    out = []
    for i, action in enumerate(actions):
        kind = "answer" if "<answer>" in action else "math_exp"
        out.append(SubTrajectory(f"{tid}/{i}", tid, tid.split("#")[0], i, kind, [dict(m) for m in prompt],
                                 [{"role": "assistant", "content": action}], task="arithmetic", outcome=correct,
                                 gold="8", meta={"steps": list(steps)}))
        prompt = prompt + out[-1].completion + [{"role": "user", "content": f"result {i}"}]
    return out


class Scripted:
    """A fake judge: scores by sub id (default 1.0); counts calls."""

    identity = "scripted"

    def __init__(self, scores: dict[str, float]):
        self.scores, self.calls = scores, 0

    def score(self, subs):
        self.calls += len(subs)
        return [Verdict(s.id, self.identity, "GOOD" if self.scores.get(s.id, 1.0) >= 0.5 else "BAD",
                        self.scores.get(s.id, 1.0)) for s in subs]


SUBS = (
    subs_of("a#0", ["<math_exp>3*4</math_exp>", "<answer>8</answer>"], correct=True)  # good, right
    + subs_of("b#0", ["<math_exp>3+4</math_exp>", "<answer>8</answer>"], correct=True)  # bad step, right
    + subs_of("c#0", ["<math_exp>3*4</math_exp>", "<answer>9</answer>"], correct=False)  # good steps, wrong
)
SCORES = {"b#0/0": 0.1, "c#0/1": 0.6}


@pytest.mark.parametrize(
    "strategy, kept",
    [("none", {"a#0", "b#0", "c#0"}), ("process", {"a#0", "c#0"}), ("outcome", {"a#0", "b#0"}), ("process+outcome", {"a#0"})],
)
def test_strategies(strategy, kept):
    scorer = Scripted(SCORES)
    result = filter_subs(SUBS, strategy, 0.5, scorer)
    assert {d["trajectory_id"] for d in result.kept} == kept
    assert (result.trajectories_in, result.trajectories_out, result.subs_in) == (3, len(kept), 6)
    assert len(result.kept) == 2 * len(kept)  # whole trajectories, every step
    assert scorer.calls == (6 if "process" in strategy else 0)  # none/outcome judge nothing
    if "process" in strategy:
        assert all(d["verdict"]["judge"] == "scripted" for d in result.kept)


def test_threshold_is_applied_to_graded_scores():
    kept = filter_subs(SUBS, "process", 0.7, Scripted(SCORES)).kept
    assert {d["trajectory_id"] for d in kept} == {"a#0"}  # c's answer scored 0.6 < 0.7


def test_process_needs_a_judge():
    with pytest.raises(ValueError, match="needs a judge"):
        filter_subs(SUBS, "process", 0.5, None)


def test_stage_with_reference_judge_reruns_from_cache(tmp_path):
    recipe = Recipe.model_validate({
        "data": {"task": "arithmetic"}, "judge": {"kind": "reference"},
        "filter": {"strategy": "process"}, "output": {"dir": str(tmp_path), "name": "r"},
    })
    run = RunDir.for_recipe(recipe)
    write_jsonl(run / "split" / "shard-00000.jsonl", [to_dict(s) for s in SUBS])
    summary = filter_stage.run(recipe, run)
    # the reference judge: a (12 then 8) kept; b computes 7 (not a gold step); c answers 9 (wrong)
    assert summary["trajectories_out"] == 1 and summary["sub_trajectories_out"] == 2
    records = list(read_shards(run / "filter"))
    assert {r["trajectory_id"] for r in records} == {"a#0"}
    assert all(r["verdict"]["label"] == "GOOD" and r["verdict"]["judge"].startswith("reference") for r in records)

    from swirl_lite.judges import CachedScorer

    seen = {}
    real = CachedScorer.score

    def spy(self, subs):
        out = real(self, subs)
        seen["hits"], seen["misses"] = self.hits, self.misses
        return out

    mp = pytest.MonkeyPatch()
    mp.setattr(CachedScorer, "score", spy)
    try:
        again = filter_stage.run(recipe.model_copy(update={"filter": recipe.filter.model_copy(update={"strategy": "process+outcome"})}), run)
    finally:
        mp.undo()
    assert seen == {"hits": 6, "misses": 0}  # another strategy on the same steps judges nothing anew
    assert again["trajectories_out"] == 1


def test_invalid_verdicts_are_counted_and_not_good():
    class Garbled(Scripted):
        def score(self, subs):
            return [Verdict(s.id, "g", "invalid" if s.id == "a#0/1" else "GOOD", 0.0 if s.id == "a#0/1" else 1.0,
                            "I cannot decide") for s in subs]

    result = filter_subs(SUBS, "process", 0.5, Garbled({}))
    assert {d["trajectory_id"] for d in result.kept} == {"b#0", "c#0"}
    rows = dict((k, v) for k, v in filter_stage.summary_rows(result, "process", 0))
    assert rows["invalid verdicts"] == 1 and rows["trajectories in / out"] == "3 / 2"


# ---------------------------------------------------------------- filter.unit: state


def test_state_unit_keeps_the_good_states_before_a_bad_step():
    subs = subs_of("q#0", ["<math_exp>3 * 4</math_exp>", "<math_exp>20 - 12</math_exp>", "<answer>9</answer>"], False)
    judge = Scripted({"q#0/2": 0.0})  # GOOD, GOOD, BAD
    whole = filter_subs(subs, "process", 0.5, judge)
    assert whole.kept == [] and whole.trajectories_out == 0
    states = filter_subs(subs, "process", 0.5, judge, unit="state")
    assert [k["id"] for k in states.kept] == ["q#0/0", "q#0/1", "q#0/2"]  # s_2 holds two GOOD actions
    assert states.ending_bad == 1 and states.trajectories_out == 1
    rows = dict(filter_stage.summary_rows(states, "process", None))
    assert rows["kept states ending BAD"] == 1 and rows["sub-trajectories in / out"] == "3 / 3"


def test_state_unit_drops_every_state_after_a_bad_step_and_respects_outcome():
    subs = subs_of("q#0", ["<math_exp>3 * 5</math_exp>", "<math_exp>20 - 12</math_exp>", "<answer>8</answer>"], True)
    judge = Scripted({"q#0/0": 0.0})  # BAD, GOOD, GOOD
    states = filter_subs(subs, "process", 0.5, judge, unit="state")
    assert [k["id"] for k in states.kept] == ["q#0/0"] and states.ending_bad == 1  # s_0 holds no action
    wrong = subs_of("r#0", ["<math_exp>3 * 4</math_exp>", "<answer>9</answer>"], False)
    both = filter_subs(subs + wrong, "process+outcome", 0.5, Scripted({"q#0/0": 0.0}), unit="state")
    assert [k["id"] for k in both.kept] == ["q#0/0"]  # r#0 answered wrong: none of its states


def test_state_unit_is_refused_without_process_judging():
    from swirl_lite.config import RecipeError, build_recipe

    with pytest.raises(RecipeError, match="filter.unit"):
        build_recipe({"filter": {"strategy": "outcome", "unit": "state"}})
    assert build_recipe({"filter": {"strategy": "process+outcome", "unit": "state"}}).filter.unit == "state"


def test_sft_after_the_state_unit_trains_only_on_good_actions(tmp_path):
    from swirl_lite.training.data import read_states

    subs = subs_of("q#0", ["<math_exp>3 * 4</math_exp>", "<math_exp>20 - 12</math_exp>", "<answer>9</answer>"], False)
    kept = filter_subs(subs, "process", 0.5, Scripted({"q#0/2": 0.0}), unit="state").kept
    write_jsonl(tmp_path / "filter" / "shard-00000.jsonl", kept)
    assert len(read_states(tmp_path / "filter").rows) == 3  # RL: every kept state
    sft = read_states(tmp_path / "filter", good_actions_above=0.5)
    assert [r["completion"][0]["content"] for r in sft.rows] == ["<math_exp>3 * 4</math_exp>", "<math_exp>20 - 12</math_exp>"]
    assert sft.skipped == {"action judged BAD (filter.unit: state)": 1}
