"""`swirl-lite bench train`: speed and peak memory of RL training, judge shared vs separate.

Four runs at the same settings (model, states, batch, G, lengths, steps), each in its own process
so that peak memory is its own:
- `per-row`: as policy-only, with `train.share_prompt` off: TRL's own path, which runs each state
  once per sampled action; the speed baseline;
- `policy-only`: the reward needs no model (the format reward): the memory floor;
- `shared`: the LLM judge is the policy's base weights with the adapter switched off
  (`judge.model: policy`), the default;
- `separate`: the LLM judge is a second copy of the same model, loaded on its own.
Reported: samples/s (sampled actions trained on per second of training) and peak memory (GPU:
torch.cuda.max_memory_allocated; CPU: the process's peak RSS), and each run's memory relative to
policy-only, and policy-only's speed relative to per-row. Target: shared <= 1.15 x policy-only.

`--arch gemma3|llama` trains a random-weight model of that architecture at the benches' size
(`architectures.py`: Gemma 3 270M's layers, sliding window 512; SmolLM2 135M's layers) instead of
`--model`; each run's `shared_states` says whether it ran each state once for its actions.

`--learn` runs the learning check instead (`bench/learn.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from swirl_lite.console import console, summary_table

MODES = ("per-row", "policy-only", "shared", "separate")
TARGET = 1.15


def bench_recipe(mode: str, model: str, steps: int, root: Path, load_in_4bit: bool = False):
    """The recipe of one run; states come from `run_one`."""
    from swirl_lite.config import build_recipe
    from swirl_lite.models import resolve_model_path

    judge_model = "policy" if mode != "separate" else resolve_model_path(model)
    return build_recipe({
        "model": {"name": model, "load_in_4bit": load_in_4bit},
        "judge": {"kind": "llm", "model": judge_model, "mode": "logprob", "batch_size": 8,
                  "load_in_4bit": load_in_4bit},
        "train": {"max_steps": steps, "per_device_batch_size": 4, "num_generations": 4,
                  "max_completion_length": 32, "logging_steps": 1, "save_steps": 1000,
                  "warmup_ratio": 0.0, "gradient_checkpointing": True,
                  "share_prompt": mode != "per-row"},
        "output": {"dir": str(root), "name": mode},
    })


def peak_memory_mb() -> tuple[float, str]:
    """Peak GPU memory allocated, else the process's peak resident set (Linux reports KiB)."""
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "GPU max allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "CPU peak RSS"


def run_one(mode: str, model: str, steps: int, load_in_4bit: bool = False, demonstrations: int = 1) -> dict:
    """One benchmark run in this process (called in a child process by `bench`)."""
    from swirl_lite.bench.learn import first_states
    from swirl_lite.runs import RunDir
    from swirl_lite.schema import write_jsonl
    from swirl_lite.stages.train import train
    from swirl_lite.training.reward import FormatReward

    root = Path(tempfile.mkdtemp(prefix="swirl-bench-"))
    recipe = bench_recipe(mode, model, steps, root, load_in_4bit)
    run = RunDir.for_recipe(recipe)
    write_jsonl(run / "filter" / "kept-00000.jsonl", first_states("train", 8, demonstrations=demonstrations))
    try:
        summary = train(recipe, run, scorer=FormatReward() if mode in ("per-row", "policy-only") else None)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    t = recipe.train
    samples = summary["steps"] * t.per_device_batch_size * t.gradient_accumulation_steps
    memory, kind = peak_memory_mb()
    return {"mode": mode, "samples_per_s": samples / summary["train_seconds"], "peak_mb": memory,
            "memory_kind": kind, "steps": summary["steps"], "train_seconds": summary["train_seconds"],
            "shared_states": bool(summary.get("shared_states"))}


def bench(model: str = "embedded", steps: int = 2, load_in_4bit: bool = False, demonstrations: int = 1,
          arch: str | None = None) -> list[dict]:
    """Run every mode in a fresh process and print the comparison table. With `arch`, the policy is
    a random-weight model of that architecture at the benches' size (`architectures.py`), built
    here and removed afterwards, instead of `model`."""
    if arch is None:
        return _bench(model, steps, load_in_4bit, demonstrations, model)
    from swirl_lite.architectures import build_model

    folder = Path(tempfile.mkdtemp(prefix=f"swirl-bench-{arch}-"))
    try:
        console.print(f"[dim]bench train: building a random-weight {arch} model (bench size) ...[/]")
        path = str(build_model(arch, folder, "bench"))
        results = _bench(path, steps, load_in_4bit, demonstrations, f"random-weight {arch}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [{**r, "arch": arch} for r in results]


def _bench(model: str, steps: int, load_in_4bit: bool, demonstrations: int, label: str) -> list[dict]:
    results = []
    for mode in MODES:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
            out = Path(fh.name)
        cmd = [sys.executable, "-m", "swirl_lite.cli", "bench", "train", "--one", mode, "--json", str(out),
               "--model", model, "--steps", str(steps), "--demonstrations", str(demonstrations)]
        cmd += ["--4bit"] if load_in_4bit else []
        console.print(f"[dim]bench train: {mode} ...[/]")
        started = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "SWIRL_LITE_NO_PROGRESS": "1"})
        if proc.returncode != 0:
            raise RuntimeError(f"bench train {mode} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
        results.append({**json.loads(out.read_text()), "wall_s": round(time.time() - started, 1)})
        out.unlink(missing_ok=True)
    by_mode = {r["mode"]: r for r in results}
    floor = by_mode["policy-only"]["peak_mb"]
    for r in results:
        r["memory_ratio"] = r["peak_mb"] / floor
    rows = [(r["mode"], r["samples_per_s"], r["peak_mb"], r["memory_ratio"], r["train_seconds"],
             "yes" if r["shared_states"] else "no") for r in results]
    console.print(summary_table(
        f"bench train: {label}, {steps} steps, {demonstrations} demonstrations per state, "
        f"{results[0]['memory_kind']} (MiB)",
        rows, ("mode", "samples/s", "peak MiB", "x policy-only", "train s", "shared"),
    ))
    speedup = by_mode["policy-only"]["samples_per_s"] / by_mode["per-row"]["samples_per_s"]
    console.print(f"share_prompt: {speedup:.2f}x the samples/s of TRL's per-row path "
                  f"({by_mode['policy-only']['samples_per_s']:.3f} vs {by_mode['per-row']['samples_per_s']:.3f})")
    shared, separate = by_mode["shared"]["memory_ratio"], by_mode["separate"]["memory_ratio"]
    verdict = "[green]meets[/]" if shared <= TARGET else "[red]misses[/]"
    console.print(f"shared judge: {shared:.3f}x policy-only memory ({verdict} the {TARGET}x target); "
                  f"separate judge: {separate:.3f}x")
    return results

