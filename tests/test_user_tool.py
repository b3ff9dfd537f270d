"""A user tool with a tag of its own, loaded by import path, runs through every stage like a built-in
one: the policy's prompt explains it, the rollout parses and runs it, split keeps its kind, the LLM
judge (a loopback endpoint) reads it as an action with the tool's own criteria, the process filter
keeps it, the RL reward scores and counts it, and the report counts it as a tool call."""

from __future__ import annotations

import json
from contextlib import contextmanager

from openai_stub import serve

from swirl_lite.backends.scripted import ScriptedLLM
from swirl_lite.config import build_recipe
from swirl_lite.runs import RunDir
from swirl_lite.schema import SubTrajectory, read_shards, to_dict
from swirl_lite.stages import evaluate, filter, generate, split
from swirl_lite.tasks import get_task


@contextmanager
def judge_server(good_if: str):
    """A loopback judge (logprob mode): GOOD for a chat that contains `good_if`, else BAD; yields
    (base URL, every chat it was asked)."""
    asked: list[str] = []

    def reply(body: dict) -> tuple[int, bytes]:
        text = "\n".join(str(m.get("content", "")) for m in body["messages"])
        asked.append(text)
        first, second = ("GOOD", "BAD") if good_if in text else ("BAD", "GOOD")
        top = [{"token": first, "logprob": -0.1}, {"token": second, "logprob": -2.5}]
        return 200, json.dumps({"choices": [{"logprobs": {"content": [{"top_logprobs": top}]}}]}).encode()

    with serve(reply) as url:
        yield url, asked


FACTS = [("What is the capital of France?", "Paris", "capital of France"),
         ("What is the capital of Peru?", "Lima", "capital of Peru")]


def user_tool_recipe(tmp_path, base_url: str):
    data = tmp_path / "facts.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a, _ in FACTS))
    return build_recipe({
        "data": {"task": "custom", "path": str(data), "kind": "qa", "grader": "exact"},
        "tools": {"use": ["tool_helpers:Lookup"]},
        "generate": {"samples_per_question": 1, "batch_size": 2, "demonstrations": 0},
        "judge": {"kind": "llm", "model": "openai", "mode": "logprob",
                  "openai": {"base_url": base_url, "model": "stub", "max_retries": 0, "concurrency": 1}},
        "filter": {"strategy": "process"},
        "eval": {"split": "train", "n_questions": 2, "batch_size": 2},
        "output": {"dir": str(tmp_path / "runs"), "name": "facts"},
    })


def policy(prompts: list[str]):
    """Looks the fact up with the user tool, then answers with the tool's result."""
    keys = {q: k for q, _, k in FACTS}

    def turn(messages: list[dict]) -> str:
        prompts.append(messages[0]["content"])
        question = messages[0]["content"].rsplit("Question: ", 1)[1].strip()
        if len(messages) == 1:
            return f"I need a fact. <lookup>{keys[question]}</lookup>"
        return f"<answer>{messages[-1]['content'].split(' -> ')[-1]}</answer>"

    return turn


def test_a_user_tool_with_a_new_tag_works_end_to_end(tmp_path, monkeypatch):
    from swirl_lite.judges import judge_for_run
    from swirl_lite.tools import run_tools
    from swirl_lite.tools.base import action_tags
    from swirl_lite.training.reward import JudgeReward

    with judge_server(good_if="lookup-hint") as (url, asked):
        recipe = user_tool_recipe(tmp_path, url)
        run = RunDir.for_recipe(recipe)
        prompts: list[str] = []
        generate.run(recipe, run, llm=ScriptedLLM(policy(prompts)))
        assert prompts and all("<lookup>KEY</lookup>" in p for p in prompts)  # the prompt explains the tag
        trajs = list(read_shards(run / "generate"))
        assert [s["action"] for t in trajs for s in t["steps"]] == ["lookup", "answer"] * 2
        assert all(t["correct"] for t in trajs) and trajs[0]["steps"][0]["result"] in ("Paris", "Lima")

        split.run(recipe, run)
        subs = [SubTrajectory.from_dict(d) for d in read_shards(run / "split")]
        assert sorted(s.kind for s in subs) == ["answer", "answer", "lookup", "lookup"]

        summary = filter.run(recipe, run)
        lookups = [a for a in asked if "Lookup: capital of" in a.split("Last step")[-1]]
        assert len(lookups) == 2 and all("lookup-hint" in a for a in lookups)  # the tool's own criteria
        assert summary["trajectories_out"] == 0  # answers are judged by the answer criteria: BAD here
    with judge_server(good_if="Question: What is the capital") as (url, asked):  # every step GOOD
        recipe = user_tool_recipe(tmp_path, url)
        summary = filter.run(recipe, run)
        assert summary["trajectories_out"] == 2 and summary["sub_trajectories_out"] == 4

        kept = [SubTrajectory.from_dict(d) for d in read_shards(run / "filter")]
        states = [s for s in kept if s.kind == "lookup"]
        tools = run_tools(recipe, get_task(recipe.data))
        reward = JudgeReward(judge_for_run(recipe, run, tools=tools), tags=action_tags(tools))
        shares: list[dict] = []
        reward.on_batch = shares.append
        scores = reward(
            prompts=[s.prompt for s in states],
            completions=[[{"role": "assistant", "content": "<lookup>capital of Peru</lookup>"}],
                         [{"role": "assistant", "content": "no action at all"}]],
            sub=[json.dumps(to_dict(s)) for s in states],
        )
        assert scores[0] > 0.5 and scores[1] == 0.0  # rewarded as an action; a tag-less turn is not
        assert shares == [{"actions/valid": 0.5, "actions/tool_call": 0.5, "actions/answer": 0.0}]

        monkeypatch.setattr(evaluate, "load_llm", lambda recipe, adapter: (ScriptedLLM(policy([])), None))
        evaluate.run(recipe, run)
    (row,) = json.loads((run / "metrics.json").read_text())["results"]
    assert row["tool_calls_per_question"] == 1.0 and row["accuracy"] == 1.0


def test_rl_sampling_stops_at_the_user_tools_closing_tag(tmp_path):
    from swirl_lite.tools import run_tools
    from swirl_lite.tools.base import action_tags
    from swirl_lite.training.rl import grpo_config

    recipe = user_tool_recipe(tmp_path, "http://127.0.0.1:9/v1")
    args = grpo_config(recipe, tmp_path / "out", action_tags(run_tools(recipe, get_task(recipe.data))))
    assert "</lookup>" in args.generation_kwargs["stop_strings"]


def test_a_judge_reply_in_another_shape_is_one_line_naming_the_endpoint(tmp_path):
    from click.testing import CliRunner

    from swirl_lite.cli import main

    with judge_server(good_if="never") as (url, _):
        recipe = user_tool_recipe(tmp_path, url)
        run = RunDir.for_recipe(recipe)
        generate.run(recipe, run, llm=ScriptedLLM(policy([])))
        split.run(recipe, run)
    wrong = {"choices": [{"logprobs": {"content": [{"top_logprobs": {"GOOD": -0.1}}]}}]}  # a dict, not a list
    with serve(lambda body: (200, json.dumps(wrong).encode())) as url:
        path = tmp_path / "recipe.yaml"
        recipe = user_tool_recipe(tmp_path, url)
        from swirl_lite.config import recipe_to_yaml

        path.write_text(recipe_to_yaml(recipe))
        result = CliRunner().invoke(main, ["filter", str(path)])
    errors = [line for line in result.output.splitlines() if line.startswith("error")]
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(errors) == 1 and url in errors[0] and "top_logprobs is not a list" in errors[0], result.output
