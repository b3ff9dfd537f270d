"""`swirl-lite bench train --sampling`: GRPO's sampling with every state in one `generate` call.

TRL samples a generation batch (here `states` states x G actions) with one `generate` call. The
shared-prompt path (`training.shared_prompt.generate`) runs each state through the model once;
it used to then call `generate` once per state, G rows wide, so every decode step read the weights
once per state. It now makes one call for all rows, left-padded to the longest state.

Timed here, in one process, on real arithmetic states of the embedded model: one call per state
(the former path: `shared_prompt.generate` on each state's rows alone) against one call for all,
the same number of tokens sampled in both (`min_new_tokens` = `max_new_tokens`, no stop strings,
so the work does not depend on what is drawn); the two alternate `repeats` times and the median of
each is reported with the ratio. Then both greedy, to show they produce the same tokens.
"""

from __future__ import annotations

import itertools

from swirl_lite.bench.settled import alternate, medians_table
from swirl_lite.console import console


def _prompts(tokenizer, rows: list[dict], generations: int):
    """Each state's chat, left-padded to one width and repeated `generations` times (rows interleaved
    as TRL's sampler lays a generation batch out: state by state)."""
    import torch

    texts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False) for r in rows]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batch = [[pad] * (width - len(p)) + p for p in ids for _ in range(generations)]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in ids for _ in range(generations)]
    return torch.tensor(batch), torch.tensor(mask)


def bench_sampling(model: str = "embedded", states: int = 2, generations: int = 8, demonstrations: int = 2,
                   tokens: int = 48, repeats: int = 3) -> dict:
    """Seconds of sampling `tokens` tokens for G actions of each state: one call per state vs one call."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from swirl_lite.bench.learn import first_states
    from swirl_lite.models import load_tokenizer, resolve_model_path
    from swirl_lite.training import shared_prompt

    path = resolve_model_path(model)
    tokenizer = load_tokenizer(path)
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids, mask = _prompts(tokenizer, first_states("train", states, demonstrations=demonstrations), generations)
    groups = shared_prompt.prompt_groups(ids, mask)
    original = policy.generate
    pad = tokenizer.pad_token_id

    def config(sample: bool) -> GenerationConfig:
        if sample:
            return GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True, temperature=0.7,
                                    top_k=0, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
        return GenerationConfig(max_new_tokens=tokens, do_sample=False, pad_token_id=pad,
                                eos_token_id=tokenizer.eos_token_id)

    def per_state(cfg):
        outs = {}
        for rows in groups:
            out = shared_prompt.generate(policy, original, ids[rows], mask[rows], generation_config=cfg)
            outs.update({row: out[j, ids.size(1):] for j, row in enumerate(rows)})
        width = max(o.numel() for o in outs.values())
        new = ids.new_full((ids.size(0), width), pad)
        for row, o in outs.items():
            new[row, : o.numel()] = o
        return new

    def one_call(cfg):
        return shared_prompt.generate(policy, original, ids, mask, groups, generation_config=cfg)[:, ids.size(1):]

    def sampled(run):
        rounds = itertools.count()

        def case():
            torch.manual_seed(next(rounds))  # round i of either case samples with seed i
            return run(config(sample=True))
        return case

    cases = {"one call per state": per_state, "one call for all": one_call}
    with torch.no_grad():
        times, _ = alternate({name: sampled(run) for name, run in cases.items()}, repeats)
        greedy = [run(config(sample=False)) for run in cases.values()]
    n = min(g.size(1) for g in greedy)
    same = torch.equal(greedy[0][:, :n], greedy[1][:, :n]) and all((g[:, n:] == pad).all() for g in greedy)
    median = medians_table(
        f"bench train --sampling: {model}, {states} states x {generations} actions x {tokens} tokens, "
        f"states <= {ids.size(1)} tokens, {torch.get_num_threads()} threads, median of {repeats}",
        times, ("sampling", "seconds", "x per state", "range s"))
    result = {"model": model, "states": states, "generations": generations, "state_tokens": int(ids.size(1)),
              "tokens": tokens, "threads": torch.get_num_threads(), "repeats": repeats, "seconds": median,
              "ratio": median["one call for all"] / median["one call per state"], "same_greedy_tokens": bool(same)}
    console.print(f"one call for all states: {result['ratio']:.2f}x the time; "
                  f"the same greedy tokens: {'yes' if same else 'NO'}")
    return result
