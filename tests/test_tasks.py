"""Task loaders for every layout, counted skips, sampling, prompts and the arithmetic generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swirl_lite.actions import parse_action
from swirl_lite.config import DataConfig
from swirl_lite.tasks import TASKS, get_task
from swirl_lite.tasks.arithmetic import generate
from swirl_lite.tasks.base import Task
from swirl_lite.tasks.common import extract_answer

DATA = Path(__file__).parent / "data"


def task_for(name: str, file: str | None = None, **kw):
    return get_task(DataConfig(task=name, path=str(DATA / file) if file else None, **kw))


def test_registry_builds_every_task_and_rejects_unknown_names():
    for name in TASKS:
        if name == "custom":
            continue
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name
    with pytest.raises(ValueError) as info:
        get_task(DataConfig(task="gsm9k"))
    message = str(info.value)
    assert "gsm9k" in message and "hotpotqa" in message and "\n" not in message


def test_gsm8k_local_jsonl():
    task = task_for("gsm8k", "gsm8k_tiny.jsonl")
    examples = task.load("train", shuffle=False)
    assert [e.answer for e in examples] == ["16", "18", "17.5", "2000"]
    assert examples[0].meta["steps"] == [10, 20, 16]
    assert examples[2].meta["steps"] == [17.5]
    assert "<<" not in examples[0].meta["solution"]
    assert task.skipped == 2 and task.skip_reasons == {"gold not parseable": 1, "missing question": 1}
    assert task.kind == "math" and task.max_steps == 10 and task.default_tools == ("calculator",)
    assert task.grade("16 plums", examples[0]).correct
    assert not task.grade("160", examples[0]).correct
    assert task.grade("2,000", examples[3]).correct
    assert task.corpus(examples) == []


def test_hotpotqa_original_json_layout():
    task = task_for("hotpotqa", "hotpotqa_tiny.json")
    examples = task.load("validation", shuffle=False)
    assert [e.id for e in examples] == ["hq-1", "hq-2"] and task.skipped == 1
    paras = examples[0].meta["paragraphs"]
    assert [p["title"] for p in paras if p["supporting"]] == ["Quillfeather Press", "Ingrid Solvang"]
    assert paras[1]["text"] == "Ingrid Solvang was a printer and poet. She was born in Bergen, Norway, in 1890."
    assert examples[0].meta["supporting_facts"] == [["Quillfeather Press", 0], ["Ingrid Solvang", 1]]
    corpus = task.corpus(examples)
    assert len(corpus) == 6  # 4 + 3 paragraphs, the shared lighthouse paragraph once
    assert len({d.id for d in corpus}) == 6
    assert {p["id"] for e in examples for p in e.meta["paragraphs"]} == {d.id for d in corpus}
    assert task.grade("the Copperbell Bridge", examples[1]).correct


def test_hotpotqa_hub_layout():
    task = task_for("hotpotqa", "hotpotqa_hub_tiny.jsonl")
    (ex,) = task.load("train")
    assert ex.id == "hub-1" and ex.answer == "the cello"
    assert [p["supporting"] for p in ex.meta["paragraphs"]] == [True, True, False]
    assert ex.meta["paragraphs"][0]["text"] == "Velvet Orchard is an indie band. Its drummer is Tomas Reyne."
    assert ex.meta["level"] == "hard"
    g = task.grade("cello", ex)
    assert g.correct and g.score == 1.0  # articles are dropped before matching


def test_musique_jsonl():
    task = task_for("musique", "musique_tiny.jsonl")
    examples = task.load("train", shuffle=False)
    assert [e.id for e in examples] == ["2hop__1_2", "2hop__5_6"]
    assert task.skip_reasons == {"unanswerable": 1}
    first = examples[0]
    assert first.aliases == ["Valport City"]
    assert task.grade("Valport City", first).correct
    assert task.grade("the River Sorrel", examples[1]).correct
    supporting = [p["id"] for p in first.meta["paragraphs"] if p["supporting"]]
    assert [hop["paragraph"] for hop in first.meta["decomposition"]] == supporting
    assert len(task.corpus(examples)) == 5


def test_custom_jsonl_numeric_answers_make_a_math_task():
    task = task_for("custom", "custom_tiny.jsonl", question_field="prompt", answer_field="target", id_field="qid")
    assert task.kind == "math" and task.default_tools == ("calculator",) and task.max_steps == 10
    examples = task.load("train", shuffle=False)
    assert [e.id for e in examples] == ["c1", "c2", "c4"]
    assert task.skipped == 1 and task.skip_reasons == {"missing target": 1}
    assert examples[2].aliases == ["ninety-nine"]
    assert task.grade("It is 42.", examples[0]).correct
    assert not task.grade("4.2", examples[0]).correct


def test_custom_csv_text_answers_make_a_qa_task():
    task = task_for("custom", "custom_tiny.csv")
    assert task.kind == "qa" and task.default_tools == ("search",)
    examples = task.load("train", shuffle=False)
    assert [e.answer for e in examples] == ["Earth", "blue", "Nobody"]
    assert task.skipped == 1
    assert task.grade("the Earth", examples[0]).correct
    assert task.grade("light blue", examples[1]).score == pytest.approx(2 / 3)


def test_custom_grader_by_import_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    task = task_for("custom", "custom_tiny.csv", grader="grader_helpers:starts_with", kind="qa")
    (earth,) = [e for e in task.load("train") if e.answer == "Earth"]
    assert task.grade("earthly delights", earth).correct
    assert not task.grade("Mars", earth).correct


def test_missing_file_is_one_line_error_naming_data_path(tmp_path):
    missing = tmp_path / "nope.jsonl"
    for name in ("custom", "gsm8k"):
        with pytest.raises(FileNotFoundError) as info:
            get_task(DataConfig(task=name, path=str(missing))).load("train")
        assert str(info.value).startswith("data.path:") and str(missing) in str(info.value)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="data.path"):
        get_task(DataConfig(task="custom"))


def test_sampling_is_deterministic_and_limit_applies(tmp_path):
    file = tmp_path / "many.jsonl"
    file.write_text("".join(json.dumps({"question": f"q{i}", "answer": str(i)}) + "\n" for i in range(50)))
    task = task_for("custom", str(file))

    def ids(**kw):
        return [e.question for e in task.load("train", **kw)]

    assert ids(limit=10, seed=3) == ids(limit=10, seed=3)
    assert ids(limit=10, seed=3) != ids(limit=10, seed=4)
    assert ids(limit=5, shuffle=False) == [f"q{i}" for i in range(5)]
    assert sorted(ids(seed=7), key=lambda q: int(q[1:])) == [f"q{i}" for i in range(50)]
    assert ids(limit=10, seed=3)[:5] == ids(limit=5, seed=3)  # a smaller limit is a prefix


@pytest.mark.parametrize(
    "text, answer",
    [
        ("So the total is 45. <answer>45</answer>", "45"),
        ("<answer> Danube </answer> trailing", "Danube"),
        ("<answer>first</answer><answer>second</answer>", "first"),
        ("I think <answer>72", "72"),  # the stop string was cut off
        ("no tag here", None),
        ("<answer></answer>", None),
        ("", None),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize("name, tag", [("arithmetic", "math_exp"), ("hotpotqa", "search_query")])
def test_prompt_layout_and_demonstrations(name, tag):
    task = get_task(name)
    example = task.load("train", limit=1)[0] if name == "arithmetic" else task_for(name, "hotpotqa_tiny.json").load("train")[0]
    plain = task.prompt(example, max_steps=7)
    assert len(plain) == 1 and plain[0]["role"] == "user"
    text = plain[0]["content"]
    assert f"<{tag}>" in text and "<answer>" in text and "at most 7 turns" in text and "->" in text
    assert text.endswith(example.question)

    messages = task.prompt(example, max_steps=7, demonstrations=2)
    assert all(m["role"] in ("user", "assistant") for m in messages)  # no system role (Gemma)
    assert messages[0]["role"] == "user" and "at most 7 turns" in messages[0]["content"]
    assert sum("at most 7 turns" in m["content"] for m in messages) == 1
    assert messages[-1] == {"role": "user", "content": f"Question: {example.question}"}
    roles = [m["role"] for m in messages]
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False))  # turns alternate
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    actions = [parse_action(t) for t in assistant]
    assert all(a.malformed is None for a in actions)
    assert [a.kind for a in actions].count("answer") == 2  # one answer per demonstration
    assert {a.kind for a in actions} == {tag, "answer"}
    for turn, action in zip(messages, messages[1:], strict=False):
        if turn["role"] == "assistant" and parse_action(turn["content"]).kind == tag:
            assert action["content"].startswith(f"{parse_action(turn['content']).query} -> ")


def test_arithmetic_is_deterministic_small_and_split_disjoint():
    task = get_task("arithmetic")
    train = task.load("train", limit=2000, seed=0)
    test = task.load("test", limit=300, seed=0)
    assert len(train) == 2000 and len(test) == 300
    assert [e.question for e in train[:50]] == [e.question for e in task.load("train", limit=50, seed=0)]
    assert not {e.question for e in train} & {e.question for e in test}
    assert not {e.question for e in train} & {e.question for e in task.load("test", limit=300, seed=1)}
    assert generate("train", 0, 5) == generate("train", 0, 5)
    assert generate("train", 0, 5) != generate("train", 1, 5)
    lengths = [len(e.meta["steps"]) for e in train]
    assert set(lengths) == {2, 3, 4}
    assert 0.5 < lengths.count(2) / len(lengths) < 0.7  # 2-step problems are the common case
    for e in train:
        steps = e.meta["steps"]
        assert e.answer == str(steps[-1]) and int(e.answer) >= 0
        assert all(isinstance(v, int) and 0 <= v <= 1000 for v in steps)
        assert task.grade(e.answer, e).correct
    with pytest.raises(ValueError, match="splits"):
        task.load("holdout")


def test_local_folder_picks_the_split_file(tmp_path):
    for split, n in (("train", 3), ("dev", 2)):
        rows = [{"question": f"{split} {i}", "answer": "1"} for i in range(n)]
        (tmp_path / f"set_{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = get_task(DataConfig(task="custom", path=str(tmp_path), kind="math"))
    assert len(task.load("train")) == 3
    assert len(task.load("validation")) == 2  # "dev" files serve the validation split
    with pytest.raises(FileNotFoundError, match="data.path"):
        task.load("test")
