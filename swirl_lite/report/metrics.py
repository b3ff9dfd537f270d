"""Report metrics: accuracy, F1, paired comparisons and tool use from the graded trajectories.

Input: the graded trajectories the evaluate stage saved, `run_dir/evaluate/<model>/<task>.jsonl`.
Output: one JSON-ready dict (`compute_metrics`) from which metrics.json, report.md and report.html
are all written (`swirl_lite.report.write_report`), so the three always agree.

What is reported (METHOD.md §5 and the paper's Table 3): accuracy with a Wilson 95% interval, mean
F1 with a seeded bootstrap interval, each trained model against the base on the same questions
(exact McNemar for accuracy, paired bootstrap for F1), and tool use: steps, tool calls per question,
% answered, % malformed actions, and % of steps the judge rates GOOD when the stage judged them.
A tool call is any step whose action is neither an answer nor unparsed ("none"), so a user's tool
with a new tag is counted like the built-in ones. On QA tasks with gold supporting paragraphs
(`meta["paragraphs"]`), also searches per question and supporting-paragraph recall: the share of a
question's gold paragraphs that some tool result of its trajectory showed, averaged over questions.
Departure: the paper grades with an LLM judge; here the task's gold grader is the headline and the
LLM grade is an extra column when `eval.llm_grader` is on (METHOD.md §6).
How training went (`training_history`) is read from what the train stage's trainer logged,
`run_dir/train/trainer_state.json` (else the newest checkpoint's): reward, valid-action share and
answer share per logged RL step, or the loss per step for SFT.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from swirl_lite.judges.reference import SEARCH, match_paragraph
from swirl_lite.report.stats import bootstrap_mean_ci, mcnemar_exact, paired_bootstrap, wilson
from swirl_lite.schema import TRAINING_SERIES, Trajectory, read_jsonl, shard_paths
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
    recalls = [r for r in map(support_recall, trajs) if r is not None]
    if recalls:
        out["searches_per_question"] = sum(s.action == SEARCH for s in steps) / n
        out["support_recall"] = sum(recalls) / len(recalls)
    good = [g for t in trajs for g in t.meta.get("step_good", [])]
    if good:
        out["judge_good"] = sum(bool(g) for g in good) / len(good)
    return out


def support_recall(traj: Trajectory) -> float | None:
    """The share of the question's gold supporting paragraphs that the trajectory's tool results
    showed; None when the question has none (not a QA task with gold paragraphs)."""
    paragraphs = traj.meta.get("paragraphs") or []
    gold = {_paragraph_key(p) for p in paragraphs if isinstance(p, dict) and p.get("supporting")}
    if not gold:
        return None
    shown = (match_paragraph(s.result, paragraphs) for s in traj.steps if s.result)
    return len(gold & {_paragraph_key(p) for p in shown if p is not None}) / len(gold)


def _paragraph_key(paragraph: dict) -> str:
    return str(paragraph.get("id", paragraph.get("title")))


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
        "training": training_history(run_path),
    }


# Besides the series the report shows (schema.TRAINING_SERIES), each step's seconds.
LOGGED = {**{series.log_key: series.name for series in TRAINING_SERIES}, "step_time": "seconds"}


def training_history(run_path: str | Path) -> dict | None:
    """{"method", "source", "steps": [{"step": 1, "reward": .., "valid_share": .., ...}, ...]} from
    the train stage's trainer state; None when the run has no logged training step."""
    train = Path(run_path) / "train"
    checkpoints = sorted(train.glob("checkpoints/checkpoint-*/trainer_state.json"),
                         key=lambda p: _step_of(p.parent.name), reverse=True)
    for path in [train / "trainer_state.json", *checkpoints]:
        try:
            history = json.loads(path.read_text())["log_history"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        steps = [_logged_step(entry) for entry in history if isinstance(entry, dict)]
        steps = [s for s in steps if s is not None]
        if steps:
            has_reward = any("reward" in s for s in steps)
            return {"method": "swirl" if has_reward else "sft", "source": str(path.relative_to(run_path)),
                    "steps": steps}
    return None


def _step_of(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _logged_step(entry: dict) -> dict | None:
    """One step's numbers from one log entry; None for the end-of-training summary entry."""
    if "train_runtime" in entry or not isinstance(entry.get("step"), int):
        return None
    out: dict = {"step": entry["step"]}
    for key, name in LOGGED.items():
        try:
            out[name] = float(entry[key])
        except (KeyError, TypeError, ValueError):
            continue
    return out if len(out) > 1 else None


def _trained_on(run_path: Path) -> str | None:
    """The training task from the run's saved recipe (None when the recipe is not there)."""
    import yaml

    try:
        return yaml.safe_load((run_path / "recipe.yaml").read_text())["data"]["task"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def _results_and_comparisons(metrics: dict):
    """Each result row with its comparison against base (None for base itself)."""
    deltas = {(c["model"], c["task"]): c for c in metrics["comparisons"]}
    for r in metrics["results"]:
        yield r, deltas.get((r["model"], r["task"]))


def headline_rows(metrics: dict) -> list[list[object]]:
    """model, task, n, accuracy, 95% CI, F1, change vs base (p) — the terminal and report headline."""
    rows = []
    for r, c in _results_and_comparisons(metrics):
        delta = f"{c['accuracy_diff']:+.3f} (p={c['mcnemar_p']:.3g})" if c else "-"
        lo, hi = r["accuracy_ci"]
        f1_lo, f1_hi = r["f1_ci"]
        f1 = f"{r['f1']:.3f}" + (f" [{f1_lo:.3f}, {f1_hi:.3f}]" if f1_lo is not None and f1_lo == f1_lo else "")
        rows.append([r["model"], r["task"], r["n"], f"{r['accuracy']:.3f}", f"[{lo:.3f}, {hi:.3f}]", f1, delta])
    return rows


HEADLINE_COLUMNS = ("model", "task", "n", "accuracy", "95% CI", "F1 [95% CI]", "vs base (McNemar p)")

# The terminal's headline: the same numbers in 80 columns (F1 is in report.md; on math it is accuracy).
TERMINAL_COLUMNS = ("model", "task", "right", "accuracy [95% CI]", "vs base (McNemar p)")


def terminal_rows(metrics: dict) -> list[list[object]]:
    """model, task, right/n, accuracy % [Wilson 95% CI], change vs base in points (p)."""
    rows = []
    for r, c in _results_and_comparisons(metrics):
        delta = f"{100 * c['accuracy_diff']:+.1f} pts (p={c['mcnemar_p']:.2g})" if c else "-"
        lo, hi = r["accuracy_ci"]
        rows.append([r["model"], r["task"], f"{r['correct']}/{r['n']}",
                     f"{100 * r['accuracy']:.1f}% [{100 * lo:.0f}, {100 * hi:.0f}]", delta])
    return rows
