"""The SFT baseline (METHOD.md §3-4, the paper's comparison point): TRL's SFTTrainer on (state ->
action) pairs, loss on the action tokens only (TRL's `completion_only_loss` on a conversational
prompt/completion dataset), with the same 4-bit base + LoRA as RL.
"""

from __future__ import annotations

from pathlib import Path

from swirl_lite.config import Recipe
from swirl_lite.training.common import trainer_args, unique_states_per_step


def sft_config(recipe: Recipe, output_dir: Path):
    """recipe.train -> trl.SFTConfig (RL-only fields are ignored)."""
    from trl import SFTConfig

    t = recipe.train
    return SFTConfig(
        **trainer_args(recipe, output_dir),
        completion_only_loss=True,
        # States are length-checked beforehand, so only an over-long action is ever cut (its tail).
        max_length=t.max_prompt_length + t.max_completion_length,
        packing=False,
        # Our dataset is already ordered (longest first, then seeded shuffles per pass).
        train_sampling_strategy="sequential",
        dataset_num_proc=None,
    )


def build_trainer(recipe: Recipe, loaded, rows: list[dict], output_dir: Path):
    """An SFTTrainer over the kept (state, action) pairs in `rows`."""
    from trl import SFTTrainer

    from swirl_lite.compat import ensure_trl_logprobs
    from swirl_lite.training.data import longest_first, ordered_dataset

    ensure_trl_logprobs()  # TRL < 1.16 without Triton (CPU): its fused LM head has no function otherwise

    per_step = unique_states_per_step(recipe)
    order = longest_first(
        [r["length"] for r in rows], per_step, recipe.train.seed, per_step * recipe.train.max_steps
    )
    dataset = ordered_dataset(rows, order, ("prompt", "completion"))
    return SFTTrainer(
        model=loaded.model,
        args=sft_config(recipe, output_dir),
        train_dataset=dataset,
        processing_class=loaded.tokenizer,
    )
