"""`swirl-lite bench train --loss`: what each way of running the GRPO loss costs, and what it changes.

One GRPO loss (the fused head's log-probabilities of G actions after each of `states` real
arithmetic states, gradient checkpointing as the recipes train, then the backward pass), in one
process, four ways that alternate `repeats` times (median of each, ratio to the first):

- `one batch`: each state's actions in one batch padded to the longest (before `padded_runs`);
- `length runs`: in batches of similar length (`backends.hf.padded_runs`, the default);
- `no state gradient`: `train.state_gradient: false`, the state run without autograd;
- `+ sampled states`: the same, reading the states' keys and values that sampling computed
  (`SampledStates`; that prefill is sampling's work, not timed here).

Each state's first action is `long` tokens (one action at the length cap, as a rambling sample is)
and the others the state's gold action. Printed with the table: how far the gradients of the
batching ways are apart (float rounding only), whether reading the sampled states gives the same
gradient bit for bit, and the cosine between the exact gradient and the one without the state's
part (1 would mean the approximation changes nothing).
"""

from __future__ import annotations

from swirl_lite.console import console


def _actions(tokenizer, rows: list[dict], generations: int, long: int) -> list[list[list[int]]]:
    """Per state: its gold action padded out to `long` tokens, then G-1 copies of the gold action
    with 0.. spaces appended (so the others differ in length a little)."""
    from swirl_lite.bench.settled import spaced_actions

    filler = tokenizer(" and", add_special_tokens=False)["input_ids"]
    out = []
    for row in rows:
        spaced = spaced_actions(tokenizer, row, generations)  # spaced[0]: the gold action itself
        out.append([(spaced[0] + filler * long)[:long], *spaced[: generations - 1]])
    return out


def bench_loss(model: str = "embedded", states: int = 2, generations: int = 8, demonstrations: int = 2,
               long: int = 48, repeats: int = 3) -> dict:
    """Seconds of one loss forward + backward, four ways (module docstring), and the gradients' agreement."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from swirl_lite.backends.hf import HFLLM
    from swirl_lite.bench.learn import first_states
    from swirl_lite.bench.settled import alternate, grpo_batch, medians_table
    from swirl_lite.compat import ensure_trl_logprobs
    from swirl_lite.config import LoraConfig
    from swirl_lite.few_rows import use_few_row_linear
    from swirl_lite.models import load_tokenizer, peft_config, resolve_model_path
    from swirl_lite.training import shared_prompt

    ensure_trl_logprobs()
    path = resolve_model_path(model)
    tokenizer = load_tokenizer(path)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    use_few_row_linear(base)  # as models.load_model does on a CPU
    add_fused_lm_head(base, temperature=1.0, outputs=("log_probs", "entropy"))
    policy = get_peft_model(base, peft_config(LoraConfig()))
    for name, p in policy.named_parameters():  # LoRA B starts at zero: give the adapter a real effect
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    policy.train()
    rows = first_states("train", states, demonstrations=demonstrations)
    ids, mask, C = grpo_batch(tokenizer, rows, _actions(tokenizer, rows, generations, long))
    cmask = mask[:, -C:].float()
    advantage = torch.randn(ids.size(0), 1)
    sampled = shared_prompt.SampledStates()
    sampled.start(0)
    prompt_ids, prompt_mask = ids[:, :-C], mask[:, :-C]
    with torch.no_grad():  # what GRPO's sampling computed for each state (its prefix: all but the last token)
        for g in range(states):
            prefix = prompt_ids[g * generations][prompt_mask[g * generations].bool()][:-1]
            sampled.put(prefix, shared_prompt._prefix_cache(policy, prefix))

    def loss(state_gradient: bool = True, one_batch: bool = False, reuse: bool = False):
        def run():
            policy.zero_grad()
            saved = HFLLM.FORWARD_COST_CPU
            HFLLM.FORWARD_COST_CPU = 10**9 if one_batch else saved  # no batch is worth a pass of its own
            try:
                logps, _ = shared_prompt.logps_and_entropies(
                    policy, ids, mask, C, True, checkpointed=True, state_gradient=state_gradient,
                    sampled=(lambda prefix: sampled.get(prefix, 0)) if reuse else None)
                (-(logps * advantage * cmask).sum() / cmask.sum()).backward()
            finally:
                HFLLM.FORWARD_COST_CPU = saved
            return torch.cat([p.grad.flatten() for p in policy.parameters() if p.requires_grad])
        return run

    cases = {"one batch": loss(one_batch=True), "length runs": loss(),
             "no state gradient": loss(state_gradient=False), "+ sampled states": loss(state_gradient=False, reuse=True)}
    times, grads = alternate(cases, repeats)
    median = medians_table(
        f"bench train --loss: {model}, {states} states x {generations} actions (one of {long} tokens), "
        f"{ids.size(1) - C}+{C} tokens, {torch.get_num_threads()} threads, median of {repeats}",
        times, ("loss", "loss+backward s", "x one batch", "range s"))
    exact, runs, cut, reused = (grads[name] for name in cases)
    rounding = float((runs - exact).abs().max() / exact.abs().max())
    cosine = float(torch.nn.functional.cosine_similarity(exact, cut, dim=0))
    same = torch.equal(cut, reused)
    result = {"model": model, "states": states, "generations": generations, "long": long,
              "state_tokens": int(ids.size(1) - C), "action_tokens": C, "threads": torch.get_num_threads(),
              "repeats": repeats, "seconds": median,
              "ratio": {name: median[name] / median["one batch"] for name in median},
              "runs_vs_one_batch_max_rel_diff": rounding, "cosine_exact_vs_no_state_gradient": cosine,
              "sampled_states_same_gradient": same}
    console.print(f"length runs vs one batch: gradients within {rounding:.1e} of the largest (float rounding); "
                  f"no state gradient: cosine {cosine:.3f} with the exact gradient; "
                  f"sampled states: {'the same gradient' if same else 'a DIFFERENT gradient'}")
    return result
