"""Giving memory back between stages, and measuring it.

`swirl-lite run` runs every stage in one process. A stage's models are garbage once its `run()`
returns, but not freed: transformers/peft/TRL objects sit in reference cycles (a trainer and its
model, a model and the `generate` wrapper bound to it) that only the cycle collector breaks, the
CUDA caching allocator keeps freed blocks reserved, and glibc keeps freed heap pages mapped. So
`release()` closes engines (vLLM reserves 85% of the GPU until closed), collects cycles, empties the
CUDA cache and returns free heap pages to the OS.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from typing import Any


def release(*engines: Any) -> None:
    """Close each engine that has `close()`, then free what the dropped objects held."""
    for engine in engines:
        close = getattr(engine, "close", None)
        if callable(close):
            close()
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    if sys.platform.startswith("linux"):
        try:  # glibc: hand freed heap pages back (a CPU run's RSS would stay at its peak otherwise)
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def rss_gb() -> float:
    """This process's resident memory now (Linux /proc; 0.0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 1024**3
