"""One judge: filter, the RL reward (train) and evaluate's judged steps get their scorer from the
same function with the same tools, index and cache, so they score the same step identically."""

from __future__ import annotations

from pathlib import Path

import pytest

from swirl_lite.backends.scripted import ScriptedLLM
from swirl_lite.config import build_recipe
from swirl_lite.runs import RunDir
from swirl_lite.schema import SubTrajectory, read_shards
from swirl_lite.stages import evaluate, filter, generate, split, train

DATA = Path(__file__).parent / "data" / "hotpotqa_tiny.json"


class Built(Exception):
    """Stops the train stage once its reward exists (the test needs the scorer, not the training)."""


def searcher(messages: list[dict]) -> str:
    """Searches the first paragraph title the question names, then answers."""
    if len(messages) == 1:
        return "<search_query>Quillfeather Press founder</search_query>"
    return "<answer>Norway</answer>"


def test_filter_train_and_evaluate_score_a_step_identically(tmp_path, tiny_model_dir, monkeypatch):
    import swirl_lite.judges as judges
    import swirl_lite.training.rl as rl

    recipe = build_recipe({
        "model": {"name": tiny_model_dir},
        "data": {"task": "hotpotqa", "path": str(DATA)},
        "generate": {"samples_per_question": 1, "demonstrations": 0},
        "judge": {"kind": "reference", "format_credit": 0.1},
        "filter": {"strategy": "process"},
        "eval": {"split": "train", "n_questions": 3, "judge_steps": True},
        "output": {"dir": str(tmp_path), "name": "qa"},
    })
    run = RunDir.for_recipe(recipe)
    generate.run(recipe, run, llm=ScriptedLLM(searcher))
    split.run(recipe, run)

    built: dict[str, object] = {}
    real = judges.judge_for_run

    def recording(stage):
        def build(*args, **kwargs):
            built[stage] = real(*args, **kwargs)
            return built[stage]
        return build

    monkeypatch.setattr(judges, "judge_for_run", recording("filter"))
    filter.run(recipe, run)
    monkeypatch.setattr(judges, "judge_for_run", recording("train"))

    def stop(recipe, loaded, rows, reward, output_dir, extra_rewards=()):
        assert reward.scorer is built["train"]
        raise Built

    monkeypatch.setattr(rl, "build_trainer", stop)
    with pytest.raises(Built):
        train.run(recipe, run)
    monkeypatch.setattr(judges, "judge_for_run", recording("evaluate"))
    monkeypatch.setattr(evaluate, "load_llm", lambda recipe, adapter: (ScriptedLLM(searcher), None))
    evaluate.run(recipe, run)

    subs = [SubTrajectory.from_dict(d) for d in read_shards(run / "split")]
    search = [s for s in subs if s.kind == "search_query"]
    assert search and set(built) == {"filter", "train", "evaluate"}
    verdicts = {stage: scorer.score(search) for stage, scorer in built.items()}
    first = [(v.judge, v.label, v.score, v.rationale) for v in verdicts["filter"]]
    for stage in ("train", "evaluate"):
        assert [(v.judge, v.label, v.score, v.rationale) for v in verdicts[stage]] == first, stage
    # and the run's index decided it: the query retrieves Quillfeather Press, a supporting paragraph
    assert first[0][1] == "GOOD" and "supporting paragraph Quillfeather Press" in first[0][3]
