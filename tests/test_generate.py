"""The generate stage: exact invariants with a scripted policy, resume after SIGKILL, and the
embedded model end to end through the CLI on a few GSM8K-layout questions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml
from click.testing import CliRunner

from swirl_lite.backends.scripted import ScriptedLLM
from swirl_lite.config import build_recipe
from swirl_lite.runs import RunDir
from swirl_lite.schema import Trajectory, read_shards, shard_paths
from swirl_lite.stages import generate
from swirl_lite.tasks import get_task

DATA = Path(__file__).parent / "data" / "rollout_gsm8k.jsonl"


def arithmetic_recipe(tmp_path, model: str = "embedded", **generate_cfg):
    cfg = {"samples_per_question": 3, "batch_size": 4, "shard_size": 4, "demonstrations": 1, **generate_cfg}
    return build_recipe({
        "model": {"name": model},
        "data": {"task": "arithmetic", "limit": 5},
        "generate": cfg,
        "output": {"dir": str(tmp_path), "name": "gen"},
    })


def solver(recipe):
    """A policy that solves the first three questions (one calculator call) and botches the rest."""
    examples = get_task(recipe.data).load("train", 5, 0, True)
    golds = {ex.question: ex.answer for ex in examples}
    good = {ex.question for ex in examples[:3]}

    def turn(messages: list[dict]) -> str:
        question = next(m["content"] for m in reversed(messages) if m["content"].startswith("Question:"))
        text = question.removeprefix("Question: ")
        if messages[-1]["content"] == question:
            return "First a sum. <math_exp>2 + 2</math_exp>"
        return f"So <answer>{golds[text] if text in good else 'twelve'}</answer>"

    return turn, examples


def test_stage_writes_every_job_once_with_exact_counts(tmp_path, tiny_model_dir):
    from datasets import load_dataset
    from transformers import AutoTokenizer

    recipe = arithmetic_recipe(tmp_path, tiny_model_dir)
    run = RunDir.for_recipe(recipe)
    turn, examples = solver(recipe)
    llm = ScriptedLLM(turn, tokenizer=AutoTokenizer.from_pretrained(tiny_model_dir))
    summary = generate.run(recipe, run, llm=llm)

    assert llm.calls == [4, 4, 4, 4, 4, 4, 3, 3]  # 15 jobs, 2 steps each, batch 4 kept full
    assert summary["questions"] == 5 and summary["trajectories"] == 15
    assert summary["mean_steps"] == 2.0 and summary["answered"] == 1.0 and summary["correct"] == 0.6
    assert summary["malformed_actions"] == 0 and summary["shards"] == 4
    records = list(read_shards(run / "generate"))
    ids = Counter(r["id"] for r in records)
    assert ids == Counter(f"{ex.id}#{s}" for ex in examples for s in range(3))
    by_q = {ex.id: ex for ex in examples}
    for r in records:
        t = Trajectory.from_dict(r)
        assert t.meta == by_q[t.question_id].meta and t.gold == by_q[t.question_id].answer
        assert [s.action for s in t.steps] == ["math_exp", "answer"] and t.steps[0].result == "4"
        assert t.prompt_tokens == sum(s.prompt_tokens for s in t.steps) > 0
        assert t.completion_tokens == sum(s.completion_tokens for s in t.steps) > 0
        assert [m["role"] for m in t.messages[t.prompt_len:]] == ["assistant", "user", "assistant"]
    ds = load_dataset("json", data_files=[str(p) for p in shard_paths(run / "generate")], split="train")
    assert ds.num_rows == 15 and set(ds["id"]) == set(ids)

    again = ScriptedLLM(turn)
    assert generate.run(recipe, run, llm=again)["trajectories"] == 15
    assert again.calls == []  # nothing left to do: a finished run is not redone


CHILD = """
import sys
from swirl_lite.backends.scripted import ScriptedLLM
from swirl_lite.config import build_recipe
from swirl_lite.runs import RunDir
from swirl_lite.stages import generate
recipe = build_recipe({recipe!r})
llm = ScriptedLLM(["<math_exp>1 + 1</math_exp>", "<answer>2</answer>"], delay_s=0.15)
generate.run(recipe, RunDir.for_recipe(recipe), llm=llm)
"""


def test_generate_resumes_after_sigkill_with_every_job_exactly_once(tmp_path):
    recipe = arithmetic_recipe(tmp_path, samples_per_question=4, batch_size=2, shard_size=2)
    child = tmp_path / "child.py"
    child.write_text(CHILD.format(recipe=recipe.model_dump(mode="json")))
    folder = tmp_path / "gen" / "generate"
    proc = subprocess.Popen([sys.executable, str(child)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while len(shard_paths(folder)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # land somewhere inside the next shard's work
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-400:]
    before = {p.name: p.read_text() for p in shard_paths(folder)}
    assert 2 <= len(before) < 10  # killed mid-way: some but not all of the 10 shards written

    llm = ScriptedLLM(["<math_exp>1 + 1</math_exp>", "<answer>2</answer>"])
    summary = generate.run(recipe, RunDir(tmp_path / "gen"), llm=llm)
    ids = Counter(r["id"] for r in read_shards(folder))
    examples = get_task(recipe.data).load("train", 5, 0, True)
    assert ids == Counter(f"{ex.id}#{s}" for ex in examples for s in range(4))
    assert summary["trajectories"] == 20
    assert all((folder / name).read_text() == text for name, text in before.items())  # kept, not redone
    assert sum(llm.calls) == 2 * (20 - sum(len(t.splitlines()) for t in before.values()))
    assert not list(folder.glob(".*"))  # no temp file left behind


def test_generate_embedded_model_on_gsm8k_layout_via_cli(tmp_path, embedded_path):
    from swirl_lite.cli import main

    recipe = {
        "model": {"name": embedded_path, "max_seq_length": 2048},
        "data": {"task": "gsm8k", "path": str(DATA), "shuffle": False},
        "generate": {"samples_per_question": 2, "batch_size": 8, "max_steps": 2, "max_new_tokens": 40,
                     "temperature": 0.7, "demonstrations": 1, "seed": 3},
        "output": {"dir": str(tmp_path), "name": "emb"},
    }
    path = tmp_path / "emb.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(main, ["generate", str(path)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "emb"
    records = [Trajectory.from_dict(r) for r in read_shards(run / "generate")]
    examples = get_task(build_recipe(recipe).data).load("train", None, 0, False)
    assert Counter(t.id for t in records) == Counter(f"{ex.id}#{s}" for ex in examples for s in range(2))
    for t in records:
        assert 1 <= len(t.steps) <= 2 and t.stop_reason in ("answer", "step_cap")
        assert t.prompt_tokens > 0 and t.completion_tokens == sum(s.completion_tokens for s in t.steps)
        assert all(0 < s.completion_tokens <= 40 for s in t.steps)
        turns = t.messages[t.prompt_len:]
        assert [m["role"] for m in turns] == ["assistant", "user"] * (len(turns) // 2) + ["assistant"] * (len(turns) % 2)
        assert sum(t.malformed.values()) == sum(s.malformed is not None for s in t.steps)
        assert (t.correct is not None) == (t.stop_reason == "answer")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["generate"]["trajectories"] == 8
