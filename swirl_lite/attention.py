"""Grouped-query attention on CPU without a copy of the keys and values for every query head.

Llama 3.2, SmolLM2 and Gemma 3 share each key/value head among several query heads (SmolLM2-135M:
9 query heads, 3 key/value heads). transformers' `sdpa` attention passes that sharing to torch
(`enable_gqa`) only without an attention mask on CUDA; otherwise, which on CPU is always when a
batch is padded or a cache is attached, it first copies every key/value head once per query
head (`repeat_kv`) and, under autograd, keeps the copies for the backward pass. In a GRPO loss
here (8 actions attending to a ~650-token state, every layer) those copies were most of the
2.2 GB the loss forward added to the quickstart's RSS.

torch's CPU kernel takes the shared heads and a mask directly: the same outputs bit for bit, the
same gradients up to float32 summation order (`tests/test_attention.py`), fewer bytes kept for
the backward pass, and less time (a 49-query, 649-key layer's forward and backward: 83 vs 145 ms
on this CPU). `use_shared_heads_on_cpu` makes transformers' own sdpa path ask for it on CPU; other
devices keep transformers' choice. It changes one decision of transformers' (the module-level
`use_gqa_in_sdpa` of `transformers.integrations.sdpa_attention`, 5.17 to 5.24), because no
setting reaches it there (5.24's TRANSFORMERS_SDPA_FORCE_GQA applies to every device and 5.17
lacks it); where that helper is missing, nothing changes.
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_swirl_shared_heads_on_cpu"


def use_shared_heads_on_cpu() -> bool:
    """Make transformers' sdpa attention pass shared key/value heads to torch on CPU (idempotent).
    False when this transformers has no such decision to change."""
    try:
        from transformers.integrations import sdpa_attention
    except ImportError:
        return False
    original = getattr(sdpa_attention, "use_gqa_in_sdpa", None)
    if original is None:
        return False
    if getattr(original, _PATCHED, False):
        return True

    def use_gqa_in_sdpa(attention_mask: Any, key: Any, *args: Any, **kwargs: Any) -> bool:
        if key.device.type == "cpu":
            return True
        return original(attention_mask, key, *args, **kwargs)

    setattr(use_gqa_in_sdpa, _PATCHED, True)
    use_gqa_in_sdpa.original = original  # type: ignore[attr-defined]
    sdpa_attention.use_gqa_in_sdpa = use_gqa_in_sdpa
    return True


def restore() -> None:
    """transformers' own decision again (tests)."""
    from transformers.integrations import sdpa_attention

    current = getattr(sdpa_attention, "use_gqa_in_sdpa", None)
    if getattr(current, _PATCHED, False):
        sdpa_attention.use_gqa_in_sdpa = current.original
