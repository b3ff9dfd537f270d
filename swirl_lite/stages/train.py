"""Train stage: step-wise RL (SWiRL) on the filtered states, or the SFT baseline.

Input:  `run_dir/filter/*.jsonl`, kept sub-trajectories (SubTrajectory dicts plus a `verdict`).
Output: `run_dir/train/adapter/` (the LoRA adapter, peft format), `run_dir/train/train_info.json`,
        `run_dir/train/trainer_state.json` (the trainer's state: its `log_history` holds what every
        logged step measured, which the report plots),
        `run_dir/train/checkpoints/checkpoint-N/` (every `train.save_steps`; the resume unit) and,
        with `train.merge: true`, `run_dir/train/merged/` (a merged 16-bit model).
Run alone: `swirl-lite train RECIPE [--set train.method=sft] [--set train.merge=true]`.

`train.method: swirl` (default), METHOD.md §4. The paper maximises E_{s~T, a~pi(s)}[R(a|s)] over
the fixed states T of the filtered sub-trajectories, with R the judge's rating of a freshly sampled
action, no gold labels and no tool execution, using Gemma 2's RLHF policy gradient (REINFORCE-style
with a KL penalty towards the initial model). Here that is TRL's GRPOTrainer (see training/rl.py):
- matches: offline states, on-policy actions (G per state, cut at the action's closing tag), the
  judge's score as the only reward, a KL penalty (`train.beta`) towards the starting policy;
- departs: the baseline is GRPO's group mean over the G actions of the same state (rewards scaled
  by the group's std, PPO-style clipped ratio) instead of plain REINFORCE; the policy is a small
  model in 4-bit with a LoRA adapter; the reference for the KL is the starting adapter (a fresh
  adapter is zero, so this is the base model; TRL keeps a frozen copy named "ref"); the judge is,
  by default, the same base weights with the adapter switched off, so no second model is loaded;
  `train.solved_states` adds each question's gold state with only the answer left to the filtered
  states (`training/data.py::add_solved_states`: why, and what it measured); `train.gold_states`
  every state along the gold solution after its first tool call.
The paper gives no learning rate, batch size, step count or KL weight; ours are in TrainConfig.

`train.method: sft` is the paper's comparison point: TRL's SFTTrainer on (state -> kept action),
loss on the action tokens only (training/sft.py).

The longest states go in the first batch, so an out-of-memory error shows at step one. A killed
run resumes from its latest checkpoint when the stage is run again.

Several GPUs: `accelerate launch --multi_gpu --num_processes N -m swirl_lite.cli train RECIPE`
(TRL's own data-parallel path). Each process holds the policy and its judge; the states of a step
are split across processes and the rewards of a group are gathered before the baseline, so
`per_device_batch_size x gradient_accumulation_steps x N` must be a multiple of num_generations.
The same command on a machine without CUDA runs N CPU processes over gloo (tests use N=2); do not
add `--cpu`, which selects accelerate's single-process launcher. Only `train` should run under
`accelerate launch`; the other stages are single-process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from swirl_lite.config import Recipe
from swirl_lite.console import console, skips, summary_table
from swirl_lite.runs import RunDir, write_text_atomic


def run(recipe: Recipe, run_dir: RunDir) -> dict:
    """Train and save the adapter; returns the stage summary."""
    return train(recipe, run_dir)


def train(recipe: Recipe, run_dir: RunDir, scorer=None) -> dict:
    """The stage with an optional ready-made StepScorer (tests, benchmarks); else the recipe's judge."""
    from swirl_lite.models import load_model
    from swirl_lite.training.common import (
        latest_checkpoint,
        save_adapter,
        save_merged,
    )
    from swirl_lite.training.data import add_solved_states, measure, read_states

    started = time.time()
    out = run_dir / "train"
    checkpoints = out / "checkpoints"
    method = recipe.train.method
    state_unit = method == "sft" and recipe.filter.unit == "state" and "process" in recipe.filter.strategy
    data = read_states(run_dir / "filter", recipe.filter.threshold if state_unit else None)
    from transformers import set_seed

    set_seed(recipe.train.seed)  # the LoRA init too, not only the trainer's sampling and order
    loaded = load_model(recipe.model, lora=True, trainable=True)
    if method == "swirl":
        from swirl_lite.judges import tools_for_run

        task, tools = tools_for_run(recipe)  # the tools generate gave the policy: their tags, their index
        gold = recipe.train.gold_states
        extra_states = "gold_states" if gold else "solved_states" if recipe.train.solved_states else None
        added = add_solved_states(data, task, every_step=gold) if extra_states else 0
    data = measure(data, loaded.tokenizer, recipe.train.max_prompt_length)

    if method == "swirl":
        from swirl_lite.actions import TAGS
        from swirl_lite.judges import judge_for_run
        from swirl_lite.tools.base import action_tags
        from swirl_lite.training import rl
        from swirl_lite.training.reward import JudgeReward

        if scorer is None:  # the filter's scorer; judge.model 'policy' judges with these weights, adapter off
            scorer = judge_for_run(recipe, run_dir, policy=loaded, tools=tools, task=task)
        reward = JudgeReward(scorer, tags=action_tags(tools) if tools is not None else TAGS)
        trainer = rl.build_trainer(recipe, loaded, data.rows, reward, checkpoints)
    else:
        from swirl_lite.training import sft

        trainer = sft.build_trainer(recipe, loaded, data.rows, checkpoints)

    from swirl_lite.training.progress import show_progress

    show_progress(trainer, method)  # one live line instead of tqdm and the trainer's log dicts
    resume = latest_checkpoint(checkpoints)
    if resume is not None:
        console.print(f"[dim]train: resuming from {resume}[/]")
    train_started = time.time()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    summary = _summary(recipe, trainer, data, resume, getattr(scorer, "identity", None), started)
    if method == "swirl" and extra_states:
        summary[extra_states] = added
    summary["train_seconds"] = round(time.time() - train_started, 2)
    if trainer.accelerator.is_main_process:
        save_adapter(trainer.model, out / "adapter")
        if recipe.train.merge:
            save_merged(trainer.model, loaded.tokenizer, out / "merged", recipe)
        write_text_atomic(out / "train_info.json", json.dumps(summary, indent=2))
        _save_state(trainer.state, out / "trainer_state.json")
        _print(summary)
    trainer.accelerator.wait_for_everyone()
    return summary


def _save_state(state, target: Path) -> None:
    """The trainer's own state file, the bytes `TrainerState.save_to_json` writes in its
    checkpoints, written atomically (`runs.write_text_atomic`)."""
    import dataclasses

    write_text_atomic(target, json.dumps(dataclasses.asdict(state), indent=2, sort_keys=True) + "\n")


def _last(history: list[dict], key: str) -> float | None:
    for entry in reversed(history):
        if key in entry:
            return entry[key]
    return None


def _summary(recipe: Recipe, trainer, data, resume: Path | None, judge: str | None, started: float) -> dict:
    history = trainer.state.log_history
    summary = {
        "method": recipe.train.method,
        "model": recipe.model.name,
        "steps": trainer.state.global_step,
        "states": len(data.rows),
        "skipped": data.skipped,
        "resumed_from": str(resume) if resume else None,
        "processes": trainer.accelerator.num_processes,
        # what a rerun must match to reproduce these numbers on a CPU (README "Reproducibility")
        "seed": recipe.train.seed,
        "torch_threads": _torch_threads(),
        "adapter": "adapter",
        "merged": "merged" if recipe.train.merge else None,
        "seconds": round(time.time() - started, 1),
    }
    if recipe.train.method == "swirl":
        summary.update(
            judge=judge,
            # each state run once for its G actions (train.share_prompt), or TRL's per-row path
            shared_states=getattr(trainer, "shares_states", False),
            reward_mean=_last(history, "reward"),
            reward_std=_last(history, "reward_std"),
            kl=_last(history, "kl"),
            valid_share=_last(history, "actions/valid"),
            tool_call_share=_last(history, "actions/tool_call"),
            answer_share=_last(history, "actions/answer"),
        )
    else:
        summary["loss"] = _last(history, "loss")
    return summary


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _print(summary: dict) -> None:
    rows = [(k, skips(v) if k == "skipped" else v if not isinstance(v, dict)
             else ", ".join(f"{a}={b}" for a, b in v.items()) or "-")
            for k, v in summary.items()]
    console.print(summary_table("train", rows, ("", "value")))
