"""`swirl-lite bench train --settled`: what skipping settled states' backward pass saves.

A GRPO state whose G sampled actions all scored the same has advantage 0 and, with no KL term,
adds exactly nothing to the gradient. The shared-prompt loss runs such a state's forward without
autograd (`training.shared_prompt.settled_rows`). In the quickstart on the AVX-512 machine 54% of
the sampled states were settled (TRL's `frac_reward_zero_std`), in learn-cpu's paper-unit run 89%.

Timed here, in one process: one GRPO loss (the fused head's log-probabilities of G actions after
each of `states` real arithmetic states, gradient checkpointing as the recipes train, then the
backward pass) with no state settled, then with the first state settled; the two alternate
`repeats` times and the median of each is reported, with the ratio, and whether the LoRA gradients
are bit for bit the same.
"""

from __future__ import annotations

import statistics
import time

from swirl_lite.console import console, summary_table


def _batch(tokenizer, rows: list[dict], generations: int):
    """Left-padded states, each repeated for `generations` right-padded actions (the state's own
    gold action with 0..G-1 spaces appended, so the actions differ in length)."""
    return grpo_batch(tokenizer, rows, [spaced_actions(tokenizer, r, generations) for r in rows])


def spaced_actions(tokenizer, row: dict, n: int) -> list[list[int]]:
    """`row`'s gold action with 0..n-1 spaces appended, as token ids (actions of other lengths)."""
    return [tokenizer(row["completion"][0]["content"] + " " * g, add_special_tokens=False)["input_ids"]
            for g in range(n)]


def grpo_batch(tokenizer, rows: list[dict], actions: list[list[list[int]]]):
    """(ids, mask, C) of a GRPO batch as TRL lays it out: each of `rows`' states (chat template,
    left-padded) repeated for each of its `actions` (token ids, right-padded to the longest, C)."""
    import torch

    prompts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False) for r in rows]
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    P = max(map(len, prompt_ids))
    C = max(len(a) for group in actions for a in group)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, mask = [], []
    for prompt, group in zip(prompt_ids, actions, strict=True):
        for action in group:
            ids.append([pad] * (P - len(prompt)) + prompt + action + [pad] * (C - len(action)))
            mask.append([0] * (P - len(prompt)) + [1] * len(prompt) + [1] * len(action) + [0] * (C - len(action)))
    return torch.tensor(ids), torch.tensor(mask), C


def alternate(cases: dict, repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Call each of `cases` (name -> no-argument callable) in turn, `repeats` rounds, so a drift in
    the machine's speed spreads over all of them: each call's seconds, and each case's last result."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    results = {}
    for _ in range(repeats):
        for name, case in cases.items():
            started = time.perf_counter()
            results[name] = case()
            times[name].append(time.perf_counter() - started)
    return times, results


def medians_table(title: str, times: dict[str, list[float]], header: tuple[str, ...]) -> dict[str, float]:
    """Print each case's median seconds, its ratio to the first case's and its range; the medians."""
    median = {name: statistics.median(ts) for name, ts in times.items()}
    base = next(iter(median.values()))
    rows = [(name, median[name], median[name] / base, f"{min(ts):.2f}-{max(ts):.2f}") for name, ts in times.items()]
    console.print(summary_table(title, rows, header))
    return median


def bench_settled(model: str = "embedded", states: int = 2, generations: int = 8, demonstrations: int = 2,
                  repeats: int = 3) -> dict:
    """Seconds of one loss forward + backward with no state settled and with the first one settled."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from swirl_lite.bench.learn import first_states
    from swirl_lite.compat import ensure_trl_logprobs
    from swirl_lite.config import LoraConfig
    from swirl_lite.models import load_tokenizer, peft_config, resolve_model_path
    from swirl_lite.training import shared_prompt

    ensure_trl_logprobs()
    path = resolve_model_path(model)
    tokenizer = load_tokenizer(path)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    add_fused_lm_head(base, temperature=0.7, outputs=("log_probs", "entropy"))
    policy = get_peft_model(base, peft_config(LoraConfig()))
    policy.train()
    ids, mask, C = _batch(tokenizer, first_states("train", states, demonstrations=demonstrations), generations)
    cmask = mask[:, -C:].float()
    advantage = torch.randn(ids.size(0), 1)
    advantage[:generations] = 0.0  # the first state: every action scored the same
    cases = {"none": None, "first state": shared_prompt.settled_rows(advantage[:, 0], beta=0.0)}

    def once(settled):
        def run():
            policy.zero_grad()
            logps, _ = shared_prompt.logps_and_entropies(policy, ids, mask, C, True, checkpointed=True,
                                                         settled=settled)
            (-(logps * advantage * cmask).sum() / cmask.sum()).backward()
            return {n: p.grad.clone() for n, p in policy.named_parameters() if p.requires_grad}
        return run

    times, grads = alternate({name: once(settled) for name, settled in cases.items()}, repeats)
    same = all(torch.equal(grads["none"][n], grads["first state"][n]) for n in grads["none"])
    median = medians_table(
        f"bench train --settled: {model}, {states} states x {generations} actions, "
        f"{ids.size(1) - C}+{C} tokens, {torch.get_num_threads()} threads, median of {repeats}",
        times, ("settled", "loss+backward s", "x none", "range s"))
    result = {"model": model, "states": states, "generations": generations, "state_tokens": int(ids.size(1) - C),
              "action_tokens": C, "threads": torch.get_num_threads(), "repeats": repeats,
              "seconds": median, "ratio": median["first state"] / median["none"], "same_gradient": same}
    console.print(f"one of {states} states settled: {result['ratio']:.2f}x the time; "
                  f"same LoRA gradients: {'yes' if same else 'NO'}")
    return result
