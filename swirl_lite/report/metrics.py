"""Report metrics: accuracy, F1, paired comparisons and tool use from the graded trajectories.

Input: the graded trajectories the evaluate stage saved, `run_dir/evaluate/<model>/<task>.jsonl`.
Output: one JSON-ready dict (`compute_metrics`) from which metrics.json, report.md and report.html
are all written (`swirl_lite.report.write_report`), so the three always agree.

What is reported (METHOD.md §5 and the paper's Table 3): accuracy with a Wilson 95% interval, mean
F1 with a seeded bootstrap interval, each trained model against the base on the same questions
(exact McNemar for accuracy, paired bootstrap for F1), and tool use: steps, tool calls per question,
% answered, % malformed actions, and % of steps the judge rates GOOD when the stage judged them.
A tool call is any step whose action is neither an answer nor unparsed ("none"), so a user's tool
with a new tag is counted like the built-in ones.
Departure: the paper grades with an LLM judge; here the task's gold grader is the headline and the
LLM grade is an extra column when `eval.llm_grader` is on (METHOD.md §6).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from swirl_lite.report.stats import bootstrap_mean_ci, mcnemar_exact, paired_bootstrap, wilson
from swirl_lite.schema import Trajectory, read_jsonl, shard_paths
from swirl_lite.tools.base import is_tool_call

BASE = "base"


def load_results(run_path: str | Path) -> dict[str, dict[str, list[Trajectory]]]:
    """{model: {task: trajectories}} from `run_path/evaluate`; the base model first."""
    root = Path(run_path) / "evaluate"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no evaluation results; run `swirl-lite evaluate RECIPE` first")
    results: dict[str, dict[str, list[Trajectory]]] = {}
    for folder in sorted(root.iterdir(), key=lambda p: (p.name != BASE, p.name)):
        files = shard_paths(folder)  # finished results only: not the hidden .partial files
        if files:
            results[folder.name] = {f.stem: [Trajectory.from_dict(d) for d in read_jsonl(f)] for f in files}
    if not results:
        raise FileNotFoundError(f"{root}: no finished (model, task) results yet")
    return results


def summarize(trajs: Sequence[Trajectory], seed: int = 0) -> dict:
    """Accuracy, F1 and tool-use statistics of one model on one task."""
    n = len(trajs)
    correct = sum(bool(t.correct) for t in trajs)
    scores = [float(t.score or 0.0) for t in trajs]
    steps = [s for t in trajs for s in t.steps]
    out = {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        "accuracy_ci": list(wilson(correct, n)),
        "f1": sum(scores) / n if n else 0.0,
        "f1_ci": list(bootstrap_mean_ci(scores, seed=seed)),
        "mean_steps": len(steps) / n if n else 0.0,
        "tool_calls_per_question": sum(is_tool_call(s.action) for s in steps) / n if n else 0.0,
        "answered": sum(t.final_answer is not None for t in trajs) / n if n else 0.0,
        "malformed_actions": sum(s.malformed is not None for s in steps) / len(steps) if steps else 0.0,
        "steps_histogram": _histogram([len(t.steps) for t in trajs]),
    }
    llm = [t.meta["llm_correct"] for t in trajs if isinstance(t.meta.get("llm_correct"), bool)]
    if llm:
        out["llm_accuracy"] = sum(llm) / len(llm)
        out["llm_accuracy_ci"] = list(wilson(sum(llm), len(llm)))
    good = [g for t in trajs for g in t.meta.get("step_good", [])]
    if good:
        out["judge_good"] = sum(bool(g) for g in good) / len(good)
    return out


def _histogram(values: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in sorted(values):
        counts[str(v)] = counts.get(str(v), 0) + 1
    return counts


def compare(base: Sequence[Trajectory], other: Sequence[Trajectory], seed: int = 0) -> dict:
    """The other model against the base on the questions both answered (paired by question id)."""
    by_id = {t.question_id: t for t in base}
    pairs = [(by_id[t.question_id], t) for t in other if t.question_id in by_id]
    b_ok = [bool(b.correct) for b, _ in pairs]
    o_ok = [bool(o.correct) for _, o in pairs]
    mc = mcnemar_exact(b_ok, o_ok)
    f1 = paired_bootstrap([float(b.score or 0) for b, _ in pairs], [float(o.score or 0) for _, o in pairs], seed=seed)
    n = len(pairs)
    return {
        "n_paired": n,
        "accuracy_diff": (sum(o_ok) - sum(b_ok)) / n if n else 0.0,
        "only_base": mc.only_base,
        "only_model": mc.only_other,
        "mcnemar_p": mc.p_value,
        "f1_diff": f1.mean_diff,
        "f1_diff_ci": list(f1.ci),
        "f1_p": f1.p_value,
    }


def compute_metrics(run_path: str | Path, seed: int = 0) -> dict:
    """Everything the report shows, as one JSON-ready dict."""
    results = load_results(run_path)
    models = list(results)
    tasks = sorted({task for per_task in results.values() for task in per_task})
    rows, comparisons = [], []
    for model in models:
        for task in tasks:
            if task not in results[model]:
                continue
            rows.append({"model": model, "task": task, **summarize(results[model][task], seed)})
            if model != BASE and task in results.get(BASE, {}):
                cmp = compare(results[BASE][task], results[model][task], seed)
                comparisons.append({"model": model, "task": task, "baseline": BASE, **cmp})
    return {
        "run": Path(run_path).resolve().name,
        "trained_on": _trained_on(Path(run_path)),
        "models": models,
        "tasks": tasks,
        "results": rows,
        "comparisons": comparisons,
    }


def _trained_on(run_path: Path) -> str | None:
    """The training task from the run's saved recipe (None when the recipe is not there)."""
    import yaml

    try:
        return yaml.safe_load((run_path / "recipe.yaml").read_text())["data"]["task"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def headline_rows(metrics: dict) -> list[list[object]]:
    """model, task, n, accuracy, 95% CI, F1, change vs base (p) — the terminal and report headline."""
    deltas = {(c["model"], c["task"]): c for c in metrics["comparisons"]}
    rows = []
    for r in metrics["results"]:
        c = deltas.get((r["model"], r["task"]))
        delta = f"{c['accuracy_diff']:+.3f} (p={c['mcnemar_p']:.3g})" if c else "-"
        lo, hi = r["accuracy_ci"]
        f1_lo, f1_hi = r["f1_ci"]
        f1 = f"{r['f1']:.3f}" + (f" [{f1_lo:.3f}, {f1_hi:.3f}]" if f1_lo is not None and f1_lo == f1_lo else "")
        rows.append([r["model"], r["task"], r["n"], f"{r['accuracy']:.3f}", f"[{lo:.3f}, {hi:.3f}]", f1, delta])
    return rows


HEADLINE_COLUMNS = ("model", "task", "n", "accuracy", "95% CI", "F1 [95% CI]", "vs base (McNemar p)")
