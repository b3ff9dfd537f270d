"""What RL and SFT share: the TrainConfig -> TRL-config mapping, resume, and saving the adapter."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from swirl_lite.config import Recipe


def precision(recipe: Recipe) -> dict[str, bool]:
    """bf16/fp16 mixed precision from the same choice as the model's load dtype (never on CPU)."""
    from swirl_lite.precision import choose

    return choose(recipe.model).trainer_flags()


def trainer_args(recipe: Recipe, output_dir: Path) -> dict[str, Any]:
    """The TrainingArguments fields both TRL configs take, from `recipe.train`."""
    import warnings

    import torch

    # transformers 5 renamed gradient checkpointing to activation checkpointing; TRL still calls the
    # old names at every step, and the FutureWarnings buried the training log. Nothing for a user to do.
    warnings.filterwarnings("ignore", message=r"`\w*gradient_checkpointing\w*` is deprecated", category=FutureWarning)

    t = recipe.train
    return {
        "output_dir": str(output_dir),
        "learning_rate": t.learning_rate,
        "lr_scheduler_type": t.lr_scheduler,
        "warmup_steps": t.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of max_steps
        "max_steps": t.max_steps,
        "per_device_train_batch_size": t.per_device_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "gradient_checkpointing": t.gradient_checkpointing,
        # Non-reentrant checkpointing works with frozen (4-bit) bases and peft without extra hooks.
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "save_strategy": "steps",
        "save_steps": t.save_steps,
        "logging_steps": t.logging_steps,
        "report_to": [] if t.report_to == "none" else [t.report_to],
        "seed": t.seed,
        "data_seed": t.seed,
        "disable_tqdm": bool(os.environ.get("SWIRL_LITE_NO_PROGRESS")),
        "dataloader_pin_memory": torch.cuda.is_available(),
        # Without CUDA, accelerate only forms a multi-process (gloo) group when told it is on the CPU.
        "use_cpu": not torch.cuda.is_available(),
        **precision(recipe),
    }


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest `checkpoint-N` folder that holds trainer state (a finished save), or None."""
    if not output_dir.is_dir():
        return None
    done = [p for p in output_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.rsplit("-", 1)[-1]), default=None)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def unique_states_per_step(recipe: Recipe, group: int = 1) -> int:
    """States one optimiser step consumes (across processes); `group` actions are sampled per state."""
    t = recipe.train
    return max(1, t.per_device_batch_size * t.gradient_accumulation_steps * world_size() // group)


def save_adapter(model, target: Path) -> Path:
    """Write only the trained adapter ("default"), atomically: temp folder, then rename."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    names = list(getattr(model, "peft_config", {}) or {})
    # TRL keeps a frozen "ref" copy of the starting adapter for the KL term; it is not the result.
    selected = ["default"] if "default" in names else None
    model.save_pretrained(tmp, selected_adapters=selected)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def save_merged(model, tokenizer, target: Path, recipe: Recipe) -> Path:
    """Merge the adapter into 16-bit base weights (reloaded unquantised) and save, atomically.

    A 4-bit base cannot be merged in place without rounding the update away, so the base is loaded
    again in 16-bit on the CPU, the saved adapter applied, then merged.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from swirl_lite.models import resolve_model_path

    adapter_dir = target.parent / "adapter"
    base_path = resolve_model_path(recipe.model.name, recipe.model.gguf_file)
    dtype = torch.bfloat16 if recipe.model.dtype in ("auto", "bfloat16") else torch.float16
    base = AutoModelForCausalLM.from_pretrained(
        base_path, dtype=dtype, trust_remote_code=recipe.model.trust_remote_code
    )
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target
