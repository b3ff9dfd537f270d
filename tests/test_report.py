"""The report: metrics from hand-made graded trajectories, three files that agree, the report CLI."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from swirl_lite.cli import main
from swirl_lite.report import compute_metrics, summarize, write_report
from swirl_lite.report.render import tables
from swirl_lite.schema import Step, Trajectory, write_jsonl


def traj(qid: str, correct: bool, steps: int = 2, answered: bool = True, malformed: int = 0, score=None) -> Trajectory:
    kinds = ["math_exp"] * (steps - 1) + (["answer"] if answered else ["math_exp"])
    step_list = [
        Step(index=i, text=f"<{k}>1</{k}>", action=k, query="1", tool="calculator" if k != "answer" else None)
        for i, k in enumerate(kinds)
    ]
    for s in step_list[:malformed]:
        s.action, s.malformed = "none", "no_tag"
    return Trajectory(
        id=f"{qid}#0", question_id=qid, sample=0, task="gsm8k", question=f"q{qid}", gold="1",
        messages=[], prompt_len=1, steps=step_list, final_answer="1" if answered else None,
        correct=correct, score=float(correct) if score is None else score,
        stop_reason="answer" if answered else "step_cap",
    )


def make_run(root, base_ok: list[bool], trained_ok: list[bool], name="run"):
    run = root / name
    write_jsonl(run / "evaluate" / "base" / "gsm8k.jsonl", [traj(str(i), ok) for i, ok in enumerate(base_ok)])
    write_jsonl(
        run / "evaluate" / "swirl" / "gsm8k.jsonl",
        [traj(str(i), ok, steps=3, malformed=1) for i, ok in enumerate(trained_ok)],
    )
    return run


def test_summarize_tool_use():
    trajs = [traj("a", True, steps=3), traj("b", False, steps=2, answered=False, malformed=1)]
    m = summarize(trajs)
    assert m["n"] == 2 and m["correct"] == 1 and m["accuracy"] == 0.5
    assert m["mean_steps"] == 2.5
    assert m["tool_calls_per_question"] == 1.5  # 2 calls in a; in b one call and one malformed turn
    assert m["answered"] == 0.5
    assert m["malformed_actions"] == pytest.approx(1 / 5)
    assert m["steps_histogram"] == {"2": 1, "3": 1}
    assert "judge_good" not in m and "llm_accuracy" not in m


def qa_traj(qid: str, results: list[str | None]) -> Trajectory:
    """A QA trajectory over two gold paragraphs (A, B) and one distractor (C): one search per result."""
    paragraphs = [{"id": k, "title": k, "text": f"{k} is a paragraph about {k.lower()}ville.", "supporting": k != "C"}
                  for k in "ABC"]
    steps = [Step(index=i, text="", action="search_query", query=str(i), tool="search", result=r)
             for i, r in enumerate(results)]
    steps.append(Step(index=len(steps), text="", action="answer", query="x"))
    return Trajectory(id=f"{qid}#0", question_id=qid, sample=0, task="multihop", question="?", gold="x",
                      messages=[], prompt_len=1, steps=steps, final_answer="x", correct=True, score=1.0,
                      meta={"paragraphs": paragraphs})


def test_support_recall_counts_each_gold_paragraph_once():
    para = {k: f"{k}: {k} is a paragraph about {k.lower()}ville." for k in "ABC"}
    both = qa_traj("1", [para["A"], para["C"], para["B"]])  # both gold paragraphs, a distractor between
    again = qa_traj("2", [para["A"], para["A"], None])  # the same gold paragraph twice, then an error
    m = summarize([both, again])
    assert m["support_recall"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["searches_per_question"] == 3.0
    assert "support_recall" not in summarize([traj("a", True)])  # math: no gold paragraphs
    _, cols, rows = tables(compute_like([both, again]))[-1]
    assert cols[6:8] == ["searches / question", "gold paragraphs found"] and rows[0][6:8] == ["3.00", "75.0%"]


def compute_like(trajs: list[Trajectory]) -> dict:
    return {"run": "r", "models": ["base"], "tasks": ["multihop"], "comparisons": [], "trained_on": None,
            "results": [{"model": "base", "task": "multihop", **summarize(trajs)}]}


def test_a_tool_with_a_new_tag_counts_as_a_tool_call():
    # A user's tool (tag "lookup") is a tool call like the calculator; answers and unparsed turns are not.
    t = traj("a", True, steps=4, malformed=1)
    t.steps[1].action, t.steps[1].tool = "lookup", "lookup"
    assert [s.action for s in t.steps] == ["none", "lookup", "math_exp", "answer"]
    assert summarize([t])["tool_calls_per_question"] == 2.0


def test_metrics_paired_comparison(tmp_path):
    # 10 questions: base right on 2, trained on 8; trained loses none of the base's.
    base = [True, True] + [False] * 8
    trained = [True] * 8 + [False] * 2
    run = make_run(tmp_path, base, trained)
    m = compute_metrics(run)
    assert m["models"] == ["base", "swirl"] and m["tasks"] == ["gsm8k"]
    swirl = next(r for r in m["results"] if r["model"] == "swirl")
    assert swirl["accuracy"] == 0.8
    assert [round(x, 3) for x in swirl["accuracy_ci"]] == [0.490, 0.943]
    (cmp,) = m["comparisons"]
    assert (cmp["only_base"], cmp["only_model"], cmp["n_paired"]) == (0, 6, 10)
    assert cmp["mcnemar_p"] == pytest.approx(2 / 64)
    assert cmp["accuracy_diff"] == pytest.approx(0.6)


def test_three_files_agree(tmp_path):
    run = make_run(tmp_path, [True, False, True, False], [True, True, True, False])
    metrics = write_report(run)
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["results"] == json.loads(json.dumps(metrics["results"]))
    md = (run / "report.md").read_text()
    html = (run / "report.html").read_text()
    for r in on_disk["results"]:
        cell = f"| {r['model']} | {r['task']} | {r['n']} | {r['accuracy']:.3f} |"
        assert cell in md
        assert f"<td>{r['accuracy']:.3f}</td>" in html
    assert html.count("data:image/png;base64,") == 2
    assert "Cross-task accuracy" in md and "Paired comparison" in md and "Tool use" in md


def test_report_cli_rebuilds_and_compares(tmp_path):
    a = make_run(tmp_path, [True, False], [True, True], name="a")
    b = make_run(tmp_path, [False, False], [True, False], name="b")
    result = CliRunner().invoke(main, ["report", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert (a / "report.html").is_file() and (b / "metrics.json").is_file()
    assert "side by side" in result.output and "1.000" in result.output and "0.500" in result.output
    missing = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no evaluation results" in " ".join(missing.output.split())


def _trainer_state(path, steps: int, reward0: float = 0.1) -> None:
    """A trainer_state.json as TRL writes it: one entry per logged step, then the run's summary."""
    history = [{"step": s, "reward": reward0 + 0.1 * s, "actions/valid": 0.25 * s, "actions/answer": 0.125 * s,
                "loss": 0.01, "step_time": 2.0, "epoch": s / steps} for s in range(1, steps + 1)]
    history.append({"step": steps, "train_runtime": 9.9, "train_loss": 0.01})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"global_step": steps, "log_history": history}))


def test_the_report_shows_how_training_went(tmp_path):
    run = make_run(tmp_path, [True, False], [True, True])
    _trainer_state(run / "train" / "checkpoints" / "checkpoint-1" / "trainer_state.json", 1, reward0=5.0)
    _trainer_state(run / "train" / "trainer_state.json", 3)
    metrics = write_report(run)
    training = metrics["training"]
    assert training["method"] == "swirl" and training["source"] == "train/trainer_state.json"
    assert [s["step"] for s in training["steps"]] == [1, 2, 3]  # the summary entry is not a step
    assert training["steps"][1] == pytest.approx(
        {"step": 2, "reward": 0.3, "valid_share": 0.5, "answer_share": 0.25, "loss": 0.01, "seconds": 2.0})
    assert json.loads((run / "metrics.json").read_text())["training"] == json.loads(json.dumps(training))
    md = (run / "report.md").read_text()
    assert "Training (swirl, 3 logged steps, first → last): reward 0.2 → 0.4 ▁" in md
    assert "valid actions 25% → 75% ▁▅█, answers 12% → 38% ▁▅█." in md
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "Training: reward, valid actions and answers per RL step" in html


def test_training_falls_back_to_the_newest_checkpoint_and_says_when_there_is_none(tmp_path):
    run = make_run(tmp_path, [True], [False])
    assert write_report(run)["training"] is None
    assert "no logged training steps" in (run / "report.md").read_text()
    for step in (2, 10):
        _trainer_state(run / "train" / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json", step)
    training = write_report(run)["training"]
    assert training["source"] == "train/checkpoints/checkpoint-10/trainer_state.json"
    assert len(training["steps"]) == 10


def test_sparkline_scales_and_buckets():
    from swirl_lite.report.render import sparkline

    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"
    assert sparkline([0.3, 0.3]) == "▁▁"
    long = sparkline([float(i) for i in range(100)])
    assert len(long) == 40 and long[0] == "▁" and long[-1] == "█"


def _rendered(renderable, width: int = 120) -> list[str]:
    from rich.console import Console

    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text().splitlines()


def test_the_terminal_headline_and_closing_panel_fit_80_columns(tmp_path):
    from swirl_lite.console import summary_table
    from swirl_lite.report import TERMINAL_COLUMNS, closing_panel, terminal_rows

    run = make_run(tmp_path, [True, True] + [False] * 8, [True] * 8 + [False] * 2, name="a-run-named-at-length")
    metrics = write_report(run)
    lines = _rendered(summary_table("evaluation", terminal_rows(metrics), TERMINAL_COLUMNS))
    assert max(map(len, lines)) <= 80
    assert "8/10" in "\n".join(lines) and "+60.0 pts (p=0.031)" in "\n".join(lines)
    (run / "train" / "adapter").mkdir(parents=True)
    stages = {"generate": {"wall_s": 372.4, "peak_rss_gb": 6.51}, "split": {"wall_s": 0.4, "peak_rss_gb": 1.2},
              "train": {"wall_s": 3725.0, "peak_rss_gb": 4.0}, "evaluate": {"summary": "from before timing"}}
    panel = "\n".join(_rendered(closing_panel(metrics, run, "recipes/quickstart.yaml", stages)))
    assert "1:08:18 in all, peak RSS 6.5 GiB (generate)" in panel
    assert "generate 6:12 · train 1:02:05 (others under 1 s)" in panel and "evaluate 0" not in panel
    assert max(map(len, panel.splitlines())) <= 80
    assert "swirl 8/10 vs base 2/10 on gsm8k: +60.0 pts, McNemar p=0.031" in panel
    assert "a real difference" in panel and "report.html" in panel
    assert "--adapter" in panel and "run recipes/learn-cpu.yaml" in panel and "gsm8k.yaml" in panel
    noise = closing_panel({**metrics, "comparisons": [{**metrics["comparisons"][0], "mcnemar_p": 0.5}]},
                          run, "recipes/learn-cpu-search.yaml")
    text = "\n".join(_rendered(noise))
    assert "could be noise" in text and "swirl-lite run recipes/learn-cpu" not in text
    text = "\n".join(_rendered(closing_panel(metrics, run, "recipes/learn-cpu.yaml")))
    assert "run recipes/learn-cpu-search.yaml" in text and "run recipes/learn-cpu.yaml" not in text
