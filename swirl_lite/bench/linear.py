"""`swirl-lite bench linear`: few-row linear layers on CPU, `F.linear` against `few_rows.FewRowLinear`.

For each distinct linear shape of the model and a decode step's row counts: the median time of
`F.linear(x, weight)` and of `(weight @ x.T).T` (FewRowLinear's form, timed bare at every count),
their ratio, the largest absolute difference between the two outputs, and whether FewRowLinear
uses the transposed form there (a swapped layer, 2-32 rows). Then the whole model: greedy decoding
of `rows` rows from real arithmetic states (each state through the model once, as GRPO's sampling
runs it), the layers `few_rows.use_few_row_linear` would swap as plain `nn.Linear` against
FewRowLinear, after one untimed warm-up, alternating `repeats` times, with the median of each and
whether both produced the same tokens. All in one process, the same weights.
"""

from __future__ import annotations

import statistics
import time

from swirl_lite.bench.settled import alternate, medians_table
from swirl_lite.console import console, summary_table


def _median_ms(fn, repeats: int, *args) -> float:
    fn(*args)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _transposed(x, weight):
    """FewRowLinear's product, timed bare at every row count (the layer itself takes it at 2-32)."""
    return (weight @ x.t()).t().contiguous()


def layer_table(model, rows: tuple[int, ...], repeats: int) -> list[dict]:
    """`F.linear(x, weight)` vs `(weight @ x.T).T` for every distinct (out, in) shape of the model's
    CPU linear layers; `used`: whether FewRowLinear takes the transposed form there."""
    import torch

    from swirl_lite.few_rows import FewRowLinear, eligible, transposed_at

    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module.weight.device.type == "cpu":
            layers.setdefault(tuple(module.weight.shape), (name, module))
    results = []
    for (out_f, in_f), (name, module) in sorted(layers.items(), key=lambda kv: -kv[0][0] * kv[0][1]):
        weight = module.weight.detach()
        swapped = eligible(module) or isinstance(module, FewRowLinear)
        for n in rows:
            x = torch.randn(n, in_f)
            with torch.no_grad():
                plain_ms = _median_ms(torch.nn.functional.linear, repeats, x, weight)
                few_ms = _median_ms(_transposed, repeats, x, weight)
                diff = (_transposed(x, weight) - torch.nn.functional.linear(x, weight)).abs().max().item()
            results.append({"layer": name.rsplit(".", 1)[-1], "shape": f"{out_f}x{in_f}", "rows": n,
                            "used": swapped and transposed_at(n),
                            "plain_ms": plain_ms, "few_ms": few_ms, "ratio": few_ms / plain_ms, "max_diff": diff})
    return results


def bench_linear(model: str = "embedded", rows: tuple[int, ...] = (1, 4, 16, 32), decode_rows: int = 16,
                 tokens: int = 32, repeats: int = 3) -> dict:
    """Per-shape timings, then greedy decoding with plain linear layers against FewRowLinear."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from swirl_lite.attention import use_shared_heads_on_cpu
    from swirl_lite.bench.learn import first_states
    from swirl_lite.bench.sampling import _prompts
    from swirl_lite.few_rows import FewRowLinear, eligible
    from swirl_lite.models import load_tokenizer, resolve_model_path
    from swirl_lite.training import shared_prompt

    use_shared_heads_on_cpu()
    path = resolve_model_path(model)
    tokenizer = load_tokenizer(path)
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    layers = layer_table(policy, rows, max(repeats, 5))
    console.print(summary_table(
        f"bench linear: {model}, ms per call, median of {max(repeats, 5)}, {torch.get_num_threads()} threads",
        [(r["layer"], r["shape"], r["rows"], f"{r['plain_ms']:.3f}", f"{r['few_ms']:.3f}", f"{r['ratio']:.2f}",
          f"{r['max_diff']:.1e}", "yes" if r["used"] else "no") for r in layers],
        ("layer", "shape", "rows", "F.linear", "W @ x.T", "ratio", "max diff", "used")))

    states = max(1, decode_rows // 8)
    ids, mask = _prompts(tokenizer, first_states("train", states, demonstrations=2), decode_rows // states)
    config = GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    groups, original = shared_prompt.prompt_groups(ids, mask), policy.generate
    # the layers `use_few_row_linear` swaps, whatever SWIRL_LITE_FEW_ROWS says: this is how to decide it
    swapped = [m for m in policy.modules() if eligible(m)]

    def decode(cls):
        for m in swapped:
            m.__class__ = cls
        # each state runs through the model once (as GRPO's sampling does), so the time is the decoding
        return shared_prompt.generate(policy, original, ids, mask, groups, generation_config=config)

    def plain():
        return decode(torch.nn.Linear)

    def few():
        return decode(FewRowLinear)

    with torch.no_grad():
        few()  # warm-up, untimed
        times, outputs = alternate({"F.linear": plain, "few-row": few}, repeats)
    median = medians_table(
        f"greedy decoding: {ids.size(0)} rows x {tokens} tokens after states of <= {ids.size(1)} tokens, "
        f"median of {repeats}", times, ("linear layers", "seconds", "x F.linear", "range s"))
    same = torch.equal(outputs["F.linear"], outputs["few-row"])
    console.print(f"few-row linear layers: {median['few-row'] / median['F.linear']:.2f}x the decoding time; "
                  f"the same greedy tokens: {'yes' if same else 'NO'}")
    return {"model": model, "threads": torch.get_num_threads(), "layers": layers, "decode_rows": int(ids.size(0)),
            "tokens": tokens, "state_tokens": int(ids.size(1)), "seconds": median,
            "ratio": median["few-row"] / median["F.linear"], "same_greedy_tokens": bool(same)}
