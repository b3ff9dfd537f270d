"""The evaluation report: `metrics.json` for machines, `report.md` and a self-contained `report.html`.

    metrics.py  compute_metrics: accuracy, F1, paired tests, tool use, from the saved trajectories
    render.py   Markdown, HTML (plots embedded as PNG) and the terminal comparison of several runs
    stats.py    Wilson and bootstrap intervals, exact McNemar, paired bootstrap, sign test

render imports metrics, metrics imports stats, never the reverse. `write_report` (here) writes the
three files from one `compute_metrics` call, so they always agree. Rebuild with
`swirl-lite report RUN_DIR`; `swirl-lite report RUN_A RUN_B` compares runs side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

from swirl_lite.report.metrics import (
    BASE,
    HEADLINE_COLUMNS,
    TERMINAL_COLUMNS,
    compare,
    compute_metrics,
    headline_rows,
    load_results,
    summarize,
    terminal_rows,
    training_history,
)
from swirl_lite.report.render import closing_panel, print_comparison, render_html, render_markdown

__all__ = [
    "BASE", "HEADLINE_COLUMNS", "TERMINAL_COLUMNS", "closing_panel", "compare", "compute_metrics",
    "headline_rows", "load_results", "print_comparison", "render_html", "render_markdown", "summarize",
    "terminal_rows", "training_history", "write_report",
]


def write_report(run_path: str | Path, metrics: dict | None = None) -> dict:
    """Write metrics.json, report.md and report.html into the run directory; returns the metrics."""
    from swirl_lite.runs import write_text_atomic

    run_path = Path(run_path)
    metrics = metrics if metrics is not None else compute_metrics(run_path)
    write_text_atomic(run_path / "metrics.json", json.dumps(_finite(metrics), indent=2, allow_nan=False))
    write_text_atomic(run_path / "report.md", render_markdown(metrics))
    write_text_atomic(run_path / "report.html", render_html(metrics))
    return metrics


def _finite(value):
    """NaN (an interval over no questions) becomes null: strict JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
