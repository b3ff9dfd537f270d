"""The one rich Console, progress bars and summary tables. All printing goes through here."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console(highlight=False, soft_wrap=False)


def progress(**extra_fields: str) -> Progress:
    """A progress bar with counts, rate fields, elapsed time and ETA.

    `extra_fields` name task fields shown after the bar, e.g. progress(rate="{task.fields[rate]}").
    """
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        *[TextColumn(fmt) for fmt in extra_fields.values()],
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    # CI logs and pipes get a quiet bar: rich renders a final line without cursor tricks.
    return Progress(*columns, console=console, disable=bool(os.environ.get("SWIRL_LITE_NO_PROGRESS")))


def summary_table(
    title: str, rows: Iterable[Sequence[object]], columns: Sequence[str] = ("", ""), numeric: bool = True
) -> Table:
    """A table whose first column is a label; other columns right-aligned when `numeric`."""
    table = Table(title=title, title_justify="left", show_header=any(columns))
    for i, name in enumerate(columns):
        table.add_column(str(name), justify="right" if numeric and i > 0 else "left")
    for row in rows:
        table.add_row(*[fmt(v) for v in row])
    return table


def fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if value is None:
        return "-"
    return str(value)


def skips(reasons: Mapping[str, int]) -> str:
    """`2 skipped (missing question 1, gold not parseable 1)`, most frequent reason first; `none`."""
    total = sum(reasons.values())
    if not total:
        return "none"
    parts = ", ".join(f"{why} {n}" for why, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])) if n)
    return f"{total} skipped ({parts})"


def error(message: str) -> None:
    """One line, never wrapped, and never read as markup (messages quote user text)."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def info(message: str) -> None:
    console.print(message)
