"""Step-wise RL on TRL's GRPOTrainer: states from the filtered sub-trajectories, the judge as reward.

Mapping (METHOD.md §4): prompts = the states s; for each state TRL samples G = num_generations
actions from the current policy (stopped at the action's closing tag), the judge scores each one,
and the loss is the policy gradient with the group-mean baseline plus `beta` x KL to the starting
policy. No tools run during training; no gold labels are read.

TRL's generate call does not pass the tokenizer, which `stop_strings` needs, so `bind_stop_strings`
wraps the policy's `generate` with the tokenizer bound. `train.share_prompt` (default on) runs each
state once for its G actions, in sampling and in the loss (`training/shared_prompt.py`): the only
method GRPOTrainer's subclass here replaces.
"""

from __future__ import annotations

import functools
from pathlib import Path

from swirl_lite.actions import TAGS, stop_strings
from swirl_lite.config import Recipe
from swirl_lite.training.common import trainer_args, unique_states_per_step, world_size


def check_group(recipe: Recipe) -> None:
    """GRPO needs whole groups of G actions in each generation batch."""
    t = recipe.train
    batch = t.per_device_batch_size * t.gradient_accumulation_steps * world_size()
    if batch % t.num_generations:
        raise ValueError(
            f"train.num_generations={t.num_generations} must divide per_device_batch_size x "
            f"gradient_accumulation_steps x processes = {batch}; change one of them"
        )


def grpo_config(recipe: Recipe, output_dir: Path, tags: tuple[str, ...] = TAGS):
    """recipe.train -> trl.GRPOConfig; sampled actions stop at the closing tag of any of `tags`
    (the run's action tags)."""
    from trl import GRPOConfig

    t = recipe.train
    check_group(recipe)
    return GRPOConfig(
        **trainer_args(recipe, output_dir),
        num_generations=t.num_generations,
        beta=t.beta,
        temperature=t.temperature,
        max_completion_length=t.max_completion_length,
        # Our dataset is already ordered (longest states first, then seeded shuffles per pass).
        shuffle_dataset=False,
        generation_kwargs={"stop_strings": list(stop_strings(tags))},
        # Tools are not run in training; only the judge's score is the reward.
        log_completions=False,
    )


def bind_stop_strings(model, tokenizer, share_prompt: bool = False) -> None:
    """Make `model.generate` receive the tokenizer, so `stop_strings` can cut at an action tag.

    Sequences that stop early are padded by `generate`; where pad differs from EOS those pads would
    count as sampled tokens, so they become EOS, which TRL masks after the first one. With
    `share_prompt`, rows with the same prompt share one prefill (`shared_prompt.generate`), and
    each state's keys and values are kept in `model.generate.sampled_states` for the loss, unless
    the model has dropout (`shared_prompt.has_dropout`: the loss's pass is another draw).
    """
    if getattr(model.generate, "_swirl_bound", False):
        return
    from swirl_lite.training import shared_prompt

    original = model.generate
    states = shared_prompt.SampledStates() if share_prompt and not shared_prompt.has_dropout(model) else None
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id

    @functools.wraps(original)
    def generate(*args, **kwargs):
        kwargs.setdefault("tokenizer", tokenizer)
        ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        groups = shared_prompt.shared_groups(ids, mask) if share_prompt and not args and mask is not None else None
        if groups:
            rest = {k: v for k, v in kwargs.items() if k not in ("input_ids", "attention_mask")}
            out = shared_prompt.generate(model, original, ids, mask, groups, states, **rest)
        else:
            out = original(*args, **kwargs)
        if pad is not None and eos is not None and pad != eos and hasattr(out, "masked_fill"):
            prompt_len = kwargs["input_ids"].shape[1] if "input_ids" in kwargs else 0
            tail = out[:, prompt_len:]
            out[:, prompt_len:] = tail.masked_fill(tail == pad, eos)
        return out

    generate._swirl_bound = True
    generate.sampled_states = states
    model.generate = generate


def shared_prompt_trainer():
    """GRPOTrainer whose loss runs each distinct state once for its G actions."""
    from trl import GRPOTrainer
    from trl.models.utils import disable_gradient_checkpointing

    from swirl_lite.training import shared_prompt

    class SharedPromptGRPOTrainer(GRPOTrainer):
        shares_states = True  # reported in the train summary (`shared_states`)
        # A state whose G actions all scored the same has advantage 0 and adds nothing to the
        # gradient (beta 0): its loss forward runs without autograd, its backward pass is skipped.
        # Exact (the same update bit for bit); a class attribute only so that a measurement can
        # turn it off (README, Benchmarks; `swirl-lite bench train --settled` times the loss).
        skip_settled = True
        _settled = None  # per row of the batch in _compute_loss
        state_gradient = True  # train.state_gradient (set by build_trainer)
        sampled_states = None  # the generate wrapper's SampledStates (set by build_trainer)
        _in_loss = False

        def _generate_and_score_completions(self, inputs):
            if self.sampled_states is not None:
                self.sampled_states.start(self.state.global_step)
            out = super()._generate_and_score_completions(inputs)
            if self.model.training:  # before TRL shuffles the rows: a state's G actions are contiguous
                out["advantages"] = shared_prompt.untie(out["advantages"], self.num_generations)
            return out

        def _compute_loss(self, model, inputs):
            if self.skip_settled and model.training:
                self._settled = shared_prompt.settled_rows(inputs["advantages"], self.beta)
            self._in_loss = True
            try:
                return super()._compute_loss(model, inputs)
            finally:
                self._settled, self._in_loss = None, False

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False,
                                               compute_aux_loss=False, **extra):
            plain = compute_aux_loss or any(v is not None for v in extra.values())
            groups = None if plain else shared_prompt.shared_groups(
                input_ids[:, :-logits_to_keep], attention_mask[:, :-logits_to_keep])
            if not groups:
                return super()._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                    compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **extra)
            # transformers' gradient checkpointing drops caches: the states' and the actions'
            # layers are checkpointed here instead (train.gradient_checkpointing).
            with disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs), \
                    self.accelerator.autocast():
                logps, entropies = shared_prompt.logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, compute_entropy, groups,
                    checkpointed=bool(self.args.gradient_checkpointing), settled=self._settled,
                    state_gradient=self.state_gradient, sampled=self._sampled())
            return logps, entropies, None

        def _sampled(self):
            """The lookup of this step's sampled states, for the policy's loss only (the reference
            model's pass, adapter off, has other weights)."""
            if not self._in_loss or self.sampled_states is None:
                return None
            step = self.state.global_step
            return lambda prefix: self.sampled_states.get(prefix, step)

    return SharedPromptGRPOTrainer


def build_trainer(recipe: Recipe, loaded, rows: list[dict], reward, output_dir: Path, extra_rewards=()):
    """A GRPOTrainer over `rows` (see training.data) with `reward` (a JudgeReward) first; sampling
    stops at the closing tags of the reward's action tags (the run's tools)."""
    from trl import GRPOTrainer

    from swirl_lite.compat import ensure_trl_logprobs
    from swirl_lite.training import shared_prompt
    from swirl_lite.training.data import longest_first, ordered_dataset

    ensure_trl_logprobs()  # TRL < 1.16 without Triton (CPU) has no log-probability function

    args = grpo_config(recipe, output_dir, getattr(reward, "tags", TAGS))
    per_step = unique_states_per_step(recipe, recipe.train.num_generations)
    order = longest_first(
        [r["length"] for r in rows], per_step, recipe.train.seed, per_step * recipe.train.max_steps
    )
    dataset = ordered_dataset(rows, order, ("prompt", "sub"))
    # One process only: under DistributedDataParallel two forward calls per backward would need care
    # this single-GPU toolkit does not take; more processes use TRL's path.
    share = (recipe.train.share_prompt and loaded.backend == "hf" and world_size() == 1
             and shared_prompt.supported(loaded.model))
    bind_stop_strings(loaded.model, loaded.tokenizer, share_prompt=share)
    funcs = [reward, *extra_rewards]
    if extra_rewards:
        args.reward_weights = [1.0] + [0.0] * len(extra_rewards)  # logged, not optimised
    if not recipe.train.state_gradient and not share:
        raise ValueError(
            "train.state_gradient: false needs each state run once for its actions (train.share_prompt "
            "on a plain transformers model in one process, not unsloth); set train.state_gradient: true"
        )
    trainer_class = shared_prompt_trainer() if share else GRPOTrainer
    trainer = trainer_class(
        model=loaded.model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=loaded.tokenizer,
    )
    if share:
        trainer.state_gradient = recipe.train.state_gradient
        trainer.sampled_states = getattr(loaded.model.generate, "sampled_states", None)
    return trainer
