"""Names that differ across the supported transformers range (`pyproject.toml`: transformers>=5.17).

transformers 5.24 renamed the KV-cache argument of every model's `forward` (and so of the model
kwargs `generate` passes on) from `past_key_values` to `cache`. Before 5.24 a `cache=` keyword is
refused by `generate` ("model_kwargs are not used by the model") and swallowed silently by
`forward`, which then computes without it; from 5.24 the old name still works with a deprecation
warning until 5.40. So the name is read off the model's own `forward` signature (which also covers
unsloth, which patches `forward`), and only when no module declares either name, from the version.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

CACHE_RENAMED_IN = (5, 24)  # first transformers release whose forward takes `cache=`
NAMES = ("cache", "past_key_values")


def cache_kwarg(model: Any) -> str:
    """'cache' or 'past_key_values': the keyword `model` (a transformers model, possibly wrapped by
    peft) takes its KV cache under, in `forward` and in `generate`."""
    modules = model.modules() if hasattr(model, "modules") else [model]
    for module in modules:
        name = _declared_name(type(module))
        if name is not None:
            return name
    return _name_for_version()


def with_cache(model: Any, cache: Any) -> dict[str, Any]:
    """`{name: cache}` for `model(**...)` / `model.generate(**...)`; empty when `cache` is None."""
    return {} if cache is None else {cache_kwarg(model): cache}


@functools.cache
def _declared_name(cls: type) -> str | None:
    forward = getattr(cls, "forward", None)
    if forward is None:
        return None
    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return None
    return next((n for n in NAMES if n in params), None)


def transformers_version() -> tuple[int, int]:
    import transformers

    major, minor = (int("".join(c for c in p if c.isdigit()) or 0) for p in transformers.__version__.split(".")[:2])
    return major, minor


def _name_for_version() -> str:
    return "cache" if transformers_version() >= CACHE_RENAMED_IN else "past_key_values"


class TorchLogProbs:
    """TRL's chunked LM-head log-probabilities in plain torch, from the full logits of the scored tokens.

    TRL before 1.16 computes GRPO's log-probabilities only through a Triton kernel (its fused LM head,
    `trl.trainer.utils._ChunkedLogProbFunction`), and leaves it None where Triton is missing: CPU
    torch, so GRPO on the pinned stack fails on a CPU ("'NoneType' object has no attribute 'apply'").
    TRL 1.16 added a torch fallback; this is the same computation (logit scale, softcap,
    temperature), with autograd doing the backward. Same call and outputs as TRL's function.
    """

    @staticmethod
    def apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping=None,
              logit_scale=1.0, outputs=("log_probs",)):
        import torch

        z = torch.nn.functional.linear(hidden, weight, bias)
        z = (z.float() if z.dtype in (torch.float16, torch.bfloat16) else z) * logit_scale  # fp32 at least
        if final_logit_softcapping is not None:
            z = final_logit_softcapping * torch.tanh(z / final_logit_softcapping)
        z = z / temperature
        logp = torch.log_softmax(z, dim=-1)
        log_probs = logp.gather(-1, targets[:, None]).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1) if "entropy" in outputs else None
        with torch.no_grad():  # logged only (TRL marks them non-differentiable)
            sq = torch.logsumexp(2 * logp, dim=-1) if "log_sum_sq_probs" in outputs else None
            mean = z.mean(-1) if "mean_logits" in outputs else None
            top1 = z.argmax(-1) == targets if "is_top1" in outputs else None
        return log_probs, entropy, sq, mean, top1


def ensure_trl_logprobs() -> bool:
    """Give TRL < 1.16 a torch log-probability function where its Triton one is missing; True if
    it was installed. A no-op with Triton (GPU machines) and on TRL 1.16+."""
    try:
        from trl.trainer import utils
    except ImportError:
        return False
    if not hasattr(utils, "_ChunkedLogProbFunction") or utils._ChunkedLogProbFunction is not None:
        return False
    utils._ChunkedLogProbFunction = TorchLogProbs
    return True
