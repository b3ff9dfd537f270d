"""Evaluate stage: a scripted LLM with known right/wrong answers, then the tiny model end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from swirl_lite.backends import Completion
from swirl_lite.backends.scripted import ScriptedLLM as Replay
from swirl_lite.cli import main
from swirl_lite.config import RecipeError, build_recipe
from swirl_lite.runs import RunDir
from swirl_lite.schema import read_jsonl
from swirl_lite.stages import evaluate


def reply(text: str) -> Completion:
    return Completion(text, prompt_tokens=0, completion_tokens=len(text.split()))


class ScriptedLLM:
    """Solves 'What is A plus B?' with one calculator call; `sloppy` adds 1 when A is odd."""

    def __init__(self, sloppy: bool):
        self.sloppy = sloppy
        self.asked: set[str] = set()  # questions seen

    def generate(self, conversations: list[list[dict]], params, seeds=None) -> list[Completion]:
        assert params.temperature == 0.0  # evaluation is greedy (METHOD.md §5)
        out = []
        for conv in conversations:
            question = next(m["content"] for m in reversed(conv) if "Question:" in m["content"])
            self.asked.add(question.rsplit("Question:", 1)[1].strip())
            match = re.search(r"What is (\d+) plus (\d+)\?", question)
            last = conv[-1]["content"]
            if match is None:
                out.append(reply("I cannot tell.\n<answer>0</answer>"))
            elif " -> " in last and "Question:" not in last:  # a tool result turn
                value = int(float(last.rsplit(" -> ", 1)[1]))
                odd = int(match.group(1)) % 2 == 1
                out.append(reply(f"Done.\n<answer>{value + (self.sloppy and odd)}</answer>"))
            else:
                out.append(reply(f"I add them.\n<math_exp>{match.group(1)} + {match.group(2)}</math_exp>"))
        return out


def gsm8k_file(tmp_path, n: int = 6):
    path = tmp_path / "sums.jsonl"
    rows = [{"question": f"What is {a} plus {a + 10}?", "answer": f"<<{a}+{a + 10}={2 * a + 10}>>\n#### {2 * a + 10}"}
            for a in range(1, n + 1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def recipe_data(tmp_path, **eval_cfg) -> dict:
    return {
        "data": {"task": "gsm8k", "path": str(gsm8k_file(tmp_path))},
        "eval": {"split": "test", "n_questions": 6, "batch_size": 4, **eval_cfg},
        "output": {"dir": str(tmp_path / "runs"), "name": "sums"},
    }


def fake_adapter(folder):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    return folder


@pytest.fixture
def scripted(monkeypatch):
    loads = []

    def load_llm(recipe, adapter):
        loads.append(adapter)
        return ScriptedLLM(sloppy=adapter is None), None

    monkeypatch.setattr(evaluate, "load_llm", load_llm)
    return loads


def test_evaluate_scripted_grades_pairs_and_resumes(tmp_path, scripted):
    recipe = build_recipe(recipe_data(tmp_path, tasks=["gsm8k", "arithmetic"]))
    run = RunDir.for_recipe(recipe)
    fake_adapter(run / "train" / "adapter")
    summary = evaluate.run(recipe, run)
    assert summary["models"] == ["base", "swirl"]
    assert summary["accuracy"]["base/gsm8k"] == 0.5 and summary["accuracy"]["swirl/gsm8k"] == 1.0
    base = list(read_jsonl(run / "evaluate" / "base" / "gsm8k.jsonl"))
    assert len(base) == 6 and all(len(t["steps"]) == 2 for t in base)
    assert [t["steps"][0]["action"] for t in base] == ["math_exp"] * 6
    assert (run / "evaluate" / "swirl" / "arithmetic.jsonl").is_file()

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["tasks"] == ["arithmetic", "gsm8k"] and metrics["trained_on"] == "gsm8k"
    (cmp,) = [c for c in metrics["comparisons"] if c["task"] == "gsm8k"]
    assert (cmp["only_base"], cmp["only_model"]) == (0, 3)
    assert cmp["mcnemar_p"] == pytest.approx(0.25)
    swirl = next(r for r in metrics["results"] if r["model"] == "swirl" and r["task"] == "gsm8k")
    assert swirl["mean_steps"] == 2 and swirl["tool_calls_per_question"] == 1 and swirl["answered"] == 1
    assert "| swirl | gsm8k | 6 | 1.000 |" in (run / "report.md").read_text()

    # A rerun skips every finished (model, task) pair: no model is loaded again.
    scripted.clear()
    evaluate.run(recipe, run)
    assert scripted == []


def test_evaluate_cli_adapter_option(tmp_path, scripted):
    recipe_file = tmp_path / "sums.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe_data(tmp_path)))
    extra = fake_adapter(tmp_path / "elsewhere" / "sft")
    runner = CliRunner()
    first = runner.invoke(main, ["evaluate", str(recipe_file)])
    assert first.exit_code == 0, first.output
    second = runner.invoke(main, ["evaluate", str(recipe_file), "--adapter", str(extra)])
    assert second.exit_code == 0, second.output
    assert scripted == [None, str(extra)]  # base once, then only the new adapter
    metrics = json.loads((tmp_path / "runs" / "sums" / "metrics.json").read_text())
    assert metrics["models"] == ["base", "sft"]
    bad = runner.invoke(main, ["evaluate", str(recipe_file), "--adapter", str(tmp_path)])
    assert bad.exit_code == 1 and "not a LoRA adapter folder" in " ".join(bad.output.split())


class FakeEngine:
    """A judge engine that says GOOD to every step and YES to every answer, and records the asks."""

    name = "fake"

    def __init__(self):
        self.asked: list[tuple[str, str]] = []

    def classify(self, chats, labels, mode):
        self.asked += [labels] * len(chats)
        return [(labels[0], 1.0, None) for _ in chats]


def test_evaluate_judge_extras(tmp_path, scripted, monkeypatch):
    import swirl_lite.judges as judge

    engine = FakeEngine()
    monkeypatch.setattr(judge, "build_engine", lambda recipe, policy=None: engine)
    recipe = build_recipe(recipe_data(tmp_path, llm_grader=True, judge_steps=True))
    run = RunDir.for_recipe(recipe)
    evaluate.run(recipe, run)
    assert engine.asked.count(("YES", "NO")) == 6 and engine.asked.count(("GOOD", "BAD")) == 12
    (row,) = json.loads((run / "metrics.json").read_text())["results"]
    assert row["llm_accuracy"] == 1.0 and row["accuracy"] == 0.5 and row["judge_good"] == 1.0
    trajs = list(read_jsonl(run / "evaluate" / "base" / "gsm8k.jsonl"))
    assert all(t["meta"]["step_good"] == [True, True] and t["meta"]["llm_correct"] for t in trajs)
    md = (run / "report.md").read_text()
    assert "judge GOOD steps" in md and "LLM-graded accuracy" in md


def test_find_models_names_and_skips(tmp_path):
    recipe = build_recipe({"output": {"dir": str(tmp_path), "name": "r"}, "train": {"method": "sft"}})
    run = RunDir.for_recipe(recipe)
    fake_adapter(run / "train" / "adapter")
    fake_adapter(run / "train" / "swirl")
    fake_adapter(run / "train" / "checkpoint-50")
    assert [m for m, _ in evaluate.find_models(recipe, run)] == ["base", "sft", "swirl"]


def save_lora(model_dir: str, out) -> None:
    """A real (untrained) LoRA adapter on the tiny model, as the train stage would leave it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), LoraConfig(r=2, target_modules="all-linear"))
    model.save_pretrained(out)


def test_evaluate_tiny_model_writes_consistent_report(tmp_path, tiny_model_dir):
    """The real backend on a 2-layer model and a LoRA adapter on it: garbage answers, but every file
    is written and agrees."""
    data = recipe_data(tmp_path, n_questions=3, max_steps=2)
    data["model"] = {"name": tiny_model_dir}
    data["generate"] = {"max_new_tokens": 8}
    recipe = build_recipe(data)
    run = RunDir.for_recipe(recipe)
    save_lora(tiny_model_dir, run / "train" / "adapter")
    evaluate.run(recipe, run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["models"] == ["base", "swirl"] and len(metrics["comparisons"]) == 1
    row = metrics["results"][0]
    trajs = list(read_jsonl(run / "evaluate" / "base" / "gsm8k.jsonl"))
    assert row["n"] == len(trajs) == 3
    assert row["correct"] == sum(bool(t["correct"]) for t in trajs)
    assert row["mean_steps"] == sum(len(t["steps"]) for t in trajs) / 3 <= 2
    md, html = (run / "report.md").read_text(), (run / "report.html").read_text()
    assert f"| base | gsm8k | 3 | {row['accuracy']:.3f} |" in md
    assert f"<td>{row['accuracy']:.3f}</td>" in html and "data:image/png;base64," in html


def test_task_config_eval_path_and_leak_warning(tmp_path, capsys):
    train_file, test_file = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    recipe = build_recipe({"data": {"task": "gsm8k", "path": str(train_file)}, "eval": {"path": str(test_file)}})
    assert evaluate.task_config(recipe, "gsm8k").path == str(test_file)
    assert evaluate.task_config(recipe, "arithmetic").path is None  # cross-task: the task's own data
    assert capsys.readouterr().out == ""
    recipe.eval.path = None
    assert evaluate.task_config(recipe, "gsm8k").path == str(train_file)
    assert "evaluation reads the training questions" in " ".join(capsys.readouterr().out.split())


def test_evaluate_resumes_an_interrupted_task(tmp_path, monkeypatch, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build_recipe(recipe_data(tmp_path / "a"))
    llm = ScriptedLLM(sloppy=True)
    monkeypatch.setattr(evaluate, "load_llm", lambda recipe, adapter: (llm, None))
    evaluate.run(first, RunDir.for_recipe(first))
    lines = (tmp_path / "a" / "runs" / "sums" / "evaluate" / "base" / "gsm8k.jsonl").read_text().splitlines()

    # A run killed after two questions: two whole lines and one torn by the kill.
    recipe = build_recipe(recipe_data(tmp_path / "b"))
    run = RunDir.for_recipe(recipe)
    partial = run / "evaluate" / "base" / ".gsm8k.partial.jsonl"
    partial.parent.mkdir(parents=True)
    partial.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:40])
    done = {json.loads(line)["question"] for line in lines[:2]}
    llm = ScriptedLLM(sloppy=True)
    monkeypatch.setattr(evaluate, "load_llm", lambda recipe, adapter: (llm, None))
    capsys.readouterr()
    evaluate.run(recipe, run)
    assert "evaluate: base / gsm8k: resuming, 2 of 6 questions already answered" in capsys.readouterr().out
    assert len(llm.asked) == 4 and not llm.asked & done
    resumed = list(read_jsonl(run / "evaluate" / "base" / "gsm8k.jsonl"))
    expected = [json.loads(line) for line in lines]
    assert [(t["question_id"], t["correct"]) for t in resumed] == [(t["question_id"], t["correct"]) for t in expected]
    assert not partial.exists()


def test_cross_task_eval_reads_a_local_file_with_its_own_search_pool(tmp_path, monkeypatch):
    # Trained on the built-in multihop world, tested also on real HotpotQA rows from a local file: each
    # task searches its own paragraphs, and both rows report supporting-paragraph recall. (The tiny
    # file's third row has no answer: a counted skip.)
    hotpot = Path(__file__).parent / "data" / "hotpotqa_tiny.json"
    recipe = build_recipe({
        "data": {"task": "multihop"},
        "eval": {"tasks": ["multihop", "hotpotqa"], "task_paths": {"hotpotqa": str(hotpot)},
                 "n_questions": 3, "batch_size": 3, "split": "test"},
        "output": {"dir": str(tmp_path / "runs"), "name": "cross"},
    })
    llm = Replay(["<search_query>Harbour Lighthouse</search_query>", "<answer>yes</answer>"])
    monkeypatch.setattr(evaluate, "load_llm", lambda recipe, adapter: (llm, None))
    evaluate.run(recipe, RunDir.for_recipe(recipe))
    run = tmp_path / "runs" / "cross"
    titles = {title for row in json.loads(hotpot.read_text()) for title, _ in row["context"]}
    hotpot_trajs = list(read_jsonl(run / "evaluate" / "base" / "hotpotqa.jsonl"))
    shown = [t["steps"][0]["result"] for t in hotpot_trajs]
    assert len(hotpot_trajs) == 2 and all(r.split(":", 1)[0] in titles for r in shown), shown
    multihop = list(read_jsonl(run / "evaluate" / "base" / "multihop.jsonl"))
    assert len(multihop) == 3 and not any(t["steps"][0]["result"].split(":", 1)[0] in titles for t in multihop)
    rows = {r["task"]: r for r in json.loads((run / "metrics.json").read_text())["results"]}
    assert set(rows) == {"multihop", "hotpotqa"} and "support_recall" in rows["multihop"]
    # The lighthouse is gold for the second question only (1 of its 2 paragraphs), not for the first.
    assert rows["hotpotqa"]["support_recall"] == 0.25 and rows["hotpotqa"]["searches_per_question"] == 1.0


def test_task_paths_must_name_a_cross_task():
    with pytest.raises(RecipeError, match="eval.task_paths.hotpotqa: names a task not in eval.tasks"):
        build_recipe({"data": {"task": "multihop"}, "eval": {"task_paths": {"hotpotqa": "dev.json"}}})
    with pytest.raises(RecipeError, match="is the training task: set eval.path instead"):
        build_recipe({"data": {"task": "multihop"}, "eval": {"tasks": ["multihop"], "task_paths": {"multihop": "x"}}})
