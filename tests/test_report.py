"""The report: metrics from hand-made graded trajectories, three files that agree, the report CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from swirl_lite.cli import main
from swirl_lite.report import compute_metrics, summarize, write_report
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
