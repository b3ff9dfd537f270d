"""The train stage's live line: one rich progress bar for the optimiser steps, with what the last
step logged (RL: reward, valid-action share, answer share; SFT: loss) and seconds per step.

It replaces the trainer's own printers (transformers' ProgressCallback prints tqdm plus every log
dict, PrinterCallback prints the dicts): the full logs stay in `train/trainer_state.json`.
Without a live terminal (output to a file or pipe, or SWIRL_LITE_NO_PROGRESS) each logged step is
one plain line.
"""

from __future__ import annotations

import os
import time

from swirl_lite.console import console, progress
from swirl_lite.schema import TRAINING_SERIES


def step_line(logs: dict, method: str) -> str:
    """`reward 0.31 valid 62% answer 25%` (swirl) or `loss 1.23` (sft), from one log entry."""
    parts = []
    for series in TRAINING_SERIES:
        value = _number(logs.get(series.log_key)) if series.method == method else None
        if value is not None:
            parts.append(f"{series.short} {100 * value:.0f}%" if series.share else f"{series.short} {value:.2f}")
    return " ".join(parts)


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def show_progress(trainer, method: str) -> None:
    """Swap the trainer's printing callbacks for the live line (main process only prints)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    # A log file or a pipe gets no live display (rich draws it once, at the end): a plain line per step.
    live = (console.is_terminal or console.is_jupyter) and not os.environ.get("SWIRL_LITE_NO_PROGRESS")

    class LiveLine(TrainerCallback):
        def __init__(self):
            self.bar = None
            self.task = None
            self.last = time.monotonic()
            self.per_step: float | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            self.bar = progress(bar_width=10, compact=True, metrics="{task.fields[metrics]}",
                                speed="{task.fields[speed]}")
            self.bar.start()
            self.task = self.bar.add_task("train", total=state.max_steps, completed=state.global_step,
                                          metrics="", speed="")
            self.last = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            now = time.monotonic()
            self.per_step, self.last = now - self.last, now
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step, speed=f"{self.per_step:.1f} s/step")

        def on_log(self, args, state, control, logs=None, **kwargs):
            line = step_line(logs or {}, method)
            if self.bar is None or not line:
                return
            self.bar.update(self.task, metrics=line)
            if not live:
                speed = f" {self.per_step:.1f} s/step" if self.per_step is not None else ""
                console.print(f"train step {state.global_step}/{state.max_steps} {line}{speed}")

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

    trainer.add_callback(LiveLine())
