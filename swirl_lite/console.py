"""The one rich Console, progress bars and summary tables. All printing goes through here.

`quiet_third_party` (the CLI calls it unless `-v`) keeps other libraries' loading bars and known,
harmless warnings off this terminal, so what a person reads is swirl-lite's own output.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence

from rich.console import Console
from rich.constrain import Constrain
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
TABLE_WIDTH = 80  # every table fits a standard terminal, whatever the console's width

# Harmless for a user, with nothing to do about them (message regex, category): transformers 5
# renamed gradient checkpointing and TRL still calls the old names at every step; torch deprecates
# torch.jit, which libraries still import.
KNOWN_WARNINGS = (
    (r"`\w*gradient_checkpointing\w*` is deprecated", FutureWarning),
    (r"`torch\.jit\.\w+` is deprecated", DeprecationWarning),
    (r"`torch\.jit\.\w+` is deprecated", FutureWarning),
)
# Library loggers whose warnings are advice for their developers, not for a swirl-lite user:
# bitsandbytes on a CPU with AVX512-BF16 asks for an optional `kernels` package it falls back from;
# `kernels` (0.19), where installed, says offline mode skips its publisher check of a cached kernel.
QUIET_LOGGERS = ("bitsandbytes", "kernels")


def quiet_third_party() -> None:
    """Silence third-party progress bars (weights loading and saving, datasets) and known-harmless
    warnings, in this process and in the processes it starts. Environment variables a user set
    win; libraries already imported are told directly."""
    # TQDM_DISABLE: bars made with plain tqdm, which the switches above do not reach (transformers'
    # one-time GGUF conversion: "Converting and de-quantizing GGUF tensors"); tqdm reads it on import
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for message, category in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()


def progress(bar_width: int | None = 40, compact: bool = False, **extra_fields: str) -> Progress:
    """A progress bar with counts, rate fields, elapsed time and ETA.

    `extra_fields` name task fields shown after the bar, e.g. progress(rate="{task.fields[rate]}").
    `compact` leaves out the percentage and the elapsed time, for a line with many fields.
    """
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=bar_width),
        MofNCompleteColumn(),
        *[TaskProgressColumn()] * (not compact),
        *[TextColumn(fmt) for fmt in extra_fields.values()],
        *[TimeElapsedColumn()] * (not compact),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    # CI logs and pipes get a quiet bar: rich renders a final line without cursor tricks.
    return Progress(*columns, console=console, disable=bool(os.environ.get("SWIRL_LITE_NO_PROGRESS")))


def summary_table(
    title: str, rows: Iterable[Sequence[object]], columns: Sequence[str] = ("", ""), numeric: bool = True
) -> Constrain:
    """A table whose first column is a label; other columns right-aligned when `numeric`. At most
    TABLE_WIDTH columns wide: a longer cell wraps inside its column instead of the table wrapping."""
    table = Table(title=title, title_justify="left", show_header=any(columns))
    for i, name in enumerate(columns):
        table.add_column(str(name), justify="right" if numeric and i > 0 else "left", overflow="fold")
    for row in rows:
        table.add_row(*[fmt(v) for v in row])
    return Constrain(table, width=TABLE_WIDTH)


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
