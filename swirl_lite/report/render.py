"""Renders the metrics of `report.metrics.compute_metrics`: Markdown, one self-contained HTML page,
and the terminal table of `swirl-lite report` (one run, or several side by side).

Both renderings are built from the same tables (`tables(metrics)`), so report.md, report.html and
metrics.json never disagree. Plots are matplotlib figures (Agg backend, no display needed) embedded
in the HTML as base64 PNG: accuracy per model and task with 95% error bars, steps per question, and
how training went (reward, valid-action share, answer share per RL step; loss for SFT), which
report.md sums up in one line. `closing_panel` is what `swirl-lite run` ends with.
"""

from __future__ import annotations

import base64
import html
import io

from swirl_lite.report.metrics import (
    HEADLINE_COLUMNS,
    TERMINAL_COLUMNS,
    headline_rows,
    terminal_rows,
)
from swirl_lite.schema import TRAINING_SERIES, Series

Table = tuple[str, list[str], list[list[object]]]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ci(ci: list) -> str:
    lo, hi = ci
    return "-" if lo is None or lo != lo else f"[{lo:.3f}, {hi:.3f}]"


def tables(metrics: dict) -> list[Table]:
    """(title, columns, rows) for every table of the report, in order."""
    out: list[Table] = [("Accuracy (gold grader)", list(HEADLINE_COLUMNS), headline_rows(metrics))]
    cell = {(r["model"], r["task"]): r for r in metrics["results"]}
    cross = [
        [m] + [f"{cell[m, t]['accuracy']:.3f} {_ci(cell[m, t]['accuracy_ci'])}" if (m, t) in cell else "-" for t in metrics["tasks"]]
        for m in metrics["models"]
    ]
    trained = f"trained on {metrics['trained_on']}; " if metrics.get("trained_on") else ""
    title = f"Cross-task accuracy ({trained}rows: model, columns: tested on)"
    out.append((title, ["model \\ task", *metrics["tasks"]], cross))
    if metrics["comparisons"]:
        rows = [
            [c["model"], c["task"], c["n_paired"], f"{c['accuracy_diff']:+.3f}", c["only_base"], c["only_model"],
             f"{c['mcnemar_p']:.3g}", f"{c['f1_diff']:+.3f}" if c["f1_diff"] == c["f1_diff"] else "-",
             _ci(c["f1_diff_ci"]), f"{c['f1_p']:.3g}"]
            for c in metrics["comparisons"]
        ]
        cols = ["model", "task", "paired n", "Δ accuracy", "only base right", "only model right",
                "McNemar p", "Δ F1", "Δ F1 95% CI", "bootstrap p"]
        out.append(("Paired comparison with the base model (same questions)", cols, rows))
    rs = metrics["results"]
    judged = any("judge_good" in r for r in rs)
    llm = any("llm_accuracy" in r for r in rs)
    recall = any("support_recall" in r for r in rs)
    cols = ["model", "task", "mean steps", "tool calls / question", "answered", "malformed actions"]
    cols += ["searches / question", "gold paragraphs found"] * recall
    cols += ["judge GOOD steps"] * judged + ["LLM-graded accuracy"] * llm
    rows = []
    for r in rs:
        row = [r["model"], r["task"], f"{r['mean_steps']:.2f}", f"{r['tool_calls_per_question']:.2f}",
               _pct(r["answered"]), _pct(r["malformed_actions"])]
        if recall:
            searches = r.get("searches_per_question")
            row += [f"{searches:.2f}" if searches is not None else "-", _pct(r.get("support_recall"))]
        row += [_pct(r.get("judge_good"))] * judged
        row += [f"{r['llm_accuracy']:.3f} {_ci(r['llm_accuracy_ci'])}" if "llm_accuracy" in r else "-"] * llm
        rows.append(row)
    out.append(("Tool use (the paper's Table 3)", cols, rows))
    return out


NOTE = (
    "Accuracy: numeric match (math) or exact match (QA) against gold; F1: mean token F1 (equals "
    "accuracy on math). 95% intervals: Wilson for accuracy, seeded bootstrap for F1. A trained model "
    "is compared with the base on the same questions: exact McNemar test on the questions only one of "
    "them gets right, paired bootstrap for F1. p < 0.05 suggests a real difference, not noise."
)


def render_markdown(metrics: dict) -> str:
    lines = [f"# swirl-lite evaluation: {metrics['run']}", "", NOTE, ""]
    for title, cols, rows in tables(metrics):
        lines += [f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
        lines.append("")
    lines += [training_line(metrics.get("training")), ""]
    lines.append("Plots (accuracy with 95% error bars, steps per question, training per step) are in report.html.")
    return "\n".join(lines) + "\n"


# (key in training["steps"], label, shown as a percentage) per method, in plotting order.
SPARKS = "▁▂▃▄▅▆▇█"


def _shown(method: str) -> list[Series]:
    return [series for series in TRAINING_SERIES if series.method == method]


def training_line(training: dict | None) -> str:
    """`Training (swirl, 8 logged steps): reward 0.10 → 0.45 ▁▃▅▇, ...` for report.md."""
    if not training:
        return "Training: no logged training steps in this run (train/trainer_state.json)."
    steps = training["steps"]
    parts = []
    for series in _shown(training["method"]):
        values = [s[series.name] for s in steps if series.name in s]
        if values:
            shown = [f"{100 * v:.0f}%" if series.share else f"{v:.3g}" for v in (values[0], values[-1])]
            parts.append(f"{series.label} {shown[0]} → {shown[1]} {sparkline(values)}")
    return f"Training ({training['method']}, {len(steps)} logged steps, first → last): " + ", ".join(parts) + "."


def sparkline(values: list[float], width: int = 40) -> str:
    """Unicode bars of `values` (at most `width`, each the mean of its share of the steps)."""
    buckets = [values[i * len(values) // width:(i + 1) * len(values) // width] for i in range(width)]
    means = [sum(b) / len(b) for b in buckets if b] if len(values) > width else values
    lo, hi = min(means), max(means)
    return "".join(SPARKS[round((v - lo) / (hi - lo) * (len(SPARKS) - 1)) if hi > lo else 0] for v in means)


def render_html(metrics: dict) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>swirl-lite evaluation: {esc(metrics['run'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}</style></head><body>",
        f"<h1>swirl-lite evaluation: {esc(metrics['run'])}</h1><p>{esc(NOTE)}</p>",
    ]
    for title, cols, rows in tables(metrics):
        parts.append(f"<h2>{esc(title)}</h2><table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>" for row in rows]
        parts.append("</table>")
    for title, png in plots(metrics):
        parts.append(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,{png}'>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def plots(metrics: dict) -> list[tuple[str, str]]:
    """(title, base64 PNG) for the accuracy bars and the steps histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    results, models, tasks = metrics["results"], metrics["models"], metrics["tasks"]
    cell = {(r["model"], r["task"]): r for r in results}
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(tasks) * max(1, len(models))), 3.6))
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        xs, ys, err = [], [], [[], []]
        for j, task in enumerate(tasks):
            if (model, task) in cell:
                r = cell[model, task]
                xs.append(j + (i - (len(models) - 1) / 2) * width)
                ys.append(r["accuracy"])
                err[0].append(max(0.0, r["accuracy"] - r["accuracy_ci"][0]))
                err[1].append(max(0.0, r["accuracy_ci"][1] - r["accuracy"]))
        ax.bar(xs, ys, width, yerr=err, capsize=4, label=model)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (95% CI)")
    ax.legend()
    out.append(("Accuracy per model and task", _png(fig, plt)))

    fig, ax = plt.subplots(figsize=(6, 3.6))
    series = [(f"{r['model']} / {r['task']}", r["steps_histogram"]) for r in results]
    counts = [int(k) for _, h in series for k in h] or [0]
    ticks = range(min(counts), max(counts) + 1)
    width = 0.8 / max(1, len(series))
    for i, (label, hist) in enumerate(series):
        xs = [k + (i - (len(series) - 1) / 2) * width for k in ticks]
        ax.bar(xs, [hist.get(str(k), 0) for k in ticks], width, label=label)
    ax.set_xticks(list(ticks))
    ax.set_xlabel("steps taken")
    ax.set_ylabel("questions")
    ax.legend(fontsize="small")
    out.append(("Steps per question", _png(fig, plt)))
    if metrics.get("training"):
        out.append(_training_plot(metrics["training"], plt))
    return out


def _training_plot(training: dict, plt) -> tuple[str, str]:
    """Each logged step's numbers as lines: shares on a 0-1 axis, with the reward (swirl); loss (sft)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for series in _shown(training["method"]):
        points = [(s["step"], s[series.name]) for s in training["steps"] if series.name in s]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o" if len(points) < 30 else None, label=series.label)
    ax.set_xlabel("training step")
    if training["method"] == "swirl":
        ax.set_ylim(0, max([1.05, *(s.get("reward", 0) for s in training["steps"])]))
        ax.set_ylabel("mean reward / share of actions")
        title = "Training: reward, valid actions and answers per RL step"
    else:
        ax.set_ylabel("loss")
        title = "Training: loss per step"
    ax.legend(fontsize="small")
    return title, _png(fig, plt)


def _png(fig, plt) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def print_comparison(all_metrics: list[dict], run_dirs) -> None:
    """One run: its headline table. Several: accuracy [95% CI] per (model, task), one column per run."""
    from swirl_lite.console import console, summary_table

    if len(all_metrics) == 1:
        console.print(summary_table("evaluation (95% CI: Wilson)", terminal_rows(all_metrics[0]), TERMINAL_COLUMNS))
        console.print(f"report: {run_dirs[0]}/report.md  report.html  metrics.json")
        return
    keys: list[tuple[str, str]] = []
    cells: list[dict] = []
    for metrics in all_metrics:
        cells.append({(r["model"], r["task"]): r for r in metrics["results"]})
        keys += [k for k in cells[-1] if k not in keys]
    rows = [
        [model, task] + [f"{c[model, task]['accuracy']:.3f} {_ci(c[model, task]['accuracy_ci'])}" if (model, task) in c else "-" for c in cells]
        for model, task in keys
    ]
    columns = ["model", "task", *[str(d) for d in run_dirs]]
    console.print(summary_table("accuracy [95% CI] side by side", rows, columns))


def headline(metrics: dict) -> tuple[str, str]:
    """The run's result in one line, and what it means: the first trained model against the base
    on the training task."""
    comparisons = metrics["comparisons"]
    if not comparisons:
        return "no trained model was evaluated against the base", ""
    trained_on = metrics.get("trained_on")
    c = next((c for c in comparisons if c["task"] == trained_on), comparisons[0])
    cell = {(r["model"], r["task"]): r for r in metrics["results"]}
    model, base = cell[c["model"], c["task"]], cell[c["baseline"], c["task"]]
    line = (f"{c['model']} {model['correct']}/{model['n']} vs base {base['correct']}/{base['n']} on "
            f"{c['task']}: {100 * c['accuracy_diff']:+.1f} pts, McNemar p={c['mcnemar_p']:.2g}")
    if c["mcnemar_p"] < 0.05:
        return line, "a real difference (p < 0.05), not noise"
    return line, "could be noise (p >= 0.05): one run is one draw; more steps, questions or seeds (sweep)"


def closing_panel(metrics: dict | None, run_path, recipe_path: str, stages: dict | None = None):
    """What `swirl-lite run` ends with: where the report is, the headline result, each stage's wall
    time and the peak memory (from the manifest's `stages`, when given), what to try next."""
    from pathlib import Path

    from rich.constrain import Constrain
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    from swirl_lite.console import TABLE_WIDTH

    run_path = Path(run_path)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("report", f"{escape(_short(run_path / 'report.html'))} (also report.md, metrics.json)")
    result, meaning = headline(metrics) if metrics else ("no evaluation in this run", "")
    grid.add_row("result", escape(result))
    if meaning:
        grid.add_row("", f"[dim]{meaning}[/]")
    for i, line in enumerate(cost_lines(stages or {})):
        grid.add_row("cost" if i == 0 else "", escape(line))
    adapter = run_path / "train" / "adapter"
    nexts = []
    if adapter.is_dir():
        nexts += [escape(f"swirl-lite chat {_short(Path(recipe_path))} --adapter {_short(adapter)}"),
                  "[dim]  ask it questions, watch each step[/]"]
    stem = Path(recipe_path).stem
    if stem not in ("learn-cpu", "learn-cpu-search"):
        nexts += ["swirl-lite run recipes/learn-cpu.yaml",
                  "[dim]  CPU, ~1 h: 80 RL steps, a larger and steadier gain on 96 problems[/]"]
    elif stem == "learn-cpu":
        nexts += ["swirl-lite run recipes/learn-cpu-search.yaml", "[dim]  CPU, ~45 min: RL teaches it to search[/]"]
    nexts += ["swirl-lite run recipes/gsm8k.yaml", "[dim]  one GPU (a T4 is enough): GSM8K, Llama 3.2 1B[/]"]
    for i, line in enumerate(nexts):
        grid.add_row("next" if i == 0 else "", line)
    panel = Panel(grid, title="swirl-lite run: done", title_align="left", expand=False)
    return Constrain(panel, width=TABLE_WIDTH)


def cost_lines(stages: dict) -> list[str]:
    """Total wall time and peak memory (and the stage that set it), then each stage's wall time;
    [] when no stage recorded them (a run directory from before they were measured)."""
    timed = {name: s for name, s in stages.items() if isinstance(s, dict) and "wall_s" in s}
    if not timed:
        return []
    total = sum(s["wall_s"] for s in timed.values())
    lines = [f"{_clock(total)} in all"]
    for key, label in (("peak_rss_gb", "peak RSS"), ("peak_vram_gb", "peak VRAM")):
        peaks = {name: s[key] for name, s in timed.items() if key in s}
        if peaks:
            top = max(peaks, key=peaks.get)
            lines[0] += f", {label} {peaks[top]:.1f} GiB ({top})"
    shown = {name: s for name, s in timed.items() if s["wall_s"] >= 1} or timed
    line = " · ".join(f"{name} {_clock(s['wall_s'])}" for name, s in shown.items())
    return lines + [line + (" (others under 1 s)" if len(shown) < len(timed) else "")]


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def _short(path) -> str:
    """A path relative to the working directory when it lies under it (shorter to read and type)."""
    from pathlib import Path

    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
