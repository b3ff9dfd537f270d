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
