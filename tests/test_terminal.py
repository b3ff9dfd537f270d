"""What a person reads: a tiny `swirl-lite run` through the CLI, as a new user would start it, prints
no traceback, no warning, no third-party progress bar or log dict, no line over 100 columns at
COLUMNS=100 (tables within 80), a live train line, and ends with the closing panel."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from rich.cells import cell_len

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
TINY = {  # the quickstart recipe, cut down to seconds on the tiny model
    "data.limit": 2, "generate.samples_per_question": 1, "generate.max_new_tokens": 12,
    "generate.max_steps": 2, "train.max_steps": 2, "train.per_device_batch_size": 2,
    "train.num_generations": 2, "train.max_completion_length": 8, "eval.n_questions": 2,
    "eval.max_steps": 2,
}
BOX = tuple("┏┃┡│└┌├╭╰")  # the first character of a table's (or panel's) lines


def test_a_tiny_run_prints_what_a_person_can_read(tmp_path, tiny_model_dir):
    sets = {**TINY, "model.name": tiny_model_dir, "output.dir": str(tmp_path / "runs"), "output.name": "tiny"}
    args = [a for key, value in sets.items() for a in ("--set", f"{key}={value}")]
    env = {**os.environ, "COLUMNS": "100"}
    for name in ("SWIRL_LITE_VERBOSE", "SWIRL_LITE_NO_PROGRESS", "TRANSFORMERS_NO_ADVISORY_WARNINGS", "TQDM_DISABLE"):
        env.pop(name, None)  # the test session's own quieting must not hide anything here
    proc = subprocess.run([sys.executable, "-m", "swirl_lite.cli", "run", str(QUICKSTART), *args],
                          cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    assert not re.search(r"warn", out, re.IGNORECASE), out
    for raw in ("Loading weights", "Writing model shards", "it/s]", "s/it]", "{'loss'", "'train_runtime'"):
        assert raw not in out, f"third-party output {raw!r} in:\n{out}"
    lines = re.split(r"\r|\n", out)
    too_wide = [line for line in lines if cell_len(line) > 100]
    assert not too_wide, too_wide
    wide_tables = [line for line in lines if line.startswith(BOX) and cell_len(line) > 80]
    assert not wide_tables, wide_tables
    train_line = next(line for line in lines if line.startswith("train ━"))
    assert "2/2" in train_line and "reward" in train_line and "s/step" in train_line
    # output to a pipe: every logged step also as a plain line, since a live display is drawn once
    steps = [line for line in lines if line.startswith("train step ")]
    assert [line.split()[2] for line in steps] == ["1/2", "2/2"] and all("reward" in line for line in steps)
    assert "cost" in out and "peak RSS" in out  # the closing panel's wall time and memory
    assert "swirl-lite run: done" in out and "result" in out and "learn-cpu" in out

    run = tmp_path / "runs" / "tiny"
    metrics = json.loads((run / "metrics.json").read_text())
    assert [s["step"] for s in metrics["training"]["steps"]] == [1, 2]
    assert "Training (swirl, 2 logged steps" in (run / "report.md").read_text()
    # the shipped train.gold_states, end to end: the arithmetic task's gold states join the filtered ones
    assert json.loads((run / "train" / "train_info.json").read_text())["gold_states"] > 0
    assert "Training: reward, valid actions and answers per RL step" in (run / "report.html").read_text()


def test_plain_tqdm_bars_are_quiet_unless_verbose():
    """transformers converts a GGUF (the embedded model, once) under a plain tqdm bar that its own
    progress-bar switch does not reach; the CLI's quieting must silence it, `-v` must not."""
    code = ("import sys; from swirl_lite.console import quiet_third_party; "
            "quiet_third_party() if sys.argv[1] == 'quiet' else None; "
            "from tqdm.auto import tqdm; list(tqdm(range(3), desc='Converting'))")
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "SWIRL_LITE_VERBOSE")}
    quiet, verbose = (subprocess.run([sys.executable, "-c", code, mode], env=env, capture_output=True,
                                     text=True, timeout=120) for mode in ("quiet", "verbose"))
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr + verbose.stderr
    assert "Converting" not in quiet.stderr and "Converting" in verbose.stderr
