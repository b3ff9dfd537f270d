"""Giving memory back between stages, and measuring it.

`swirl-lite run` runs every stage in one process. A stage's models are garbage once its `run()`
returns, but not freed: transformers/peft/TRL objects sit in reference cycles (a trainer and its
model, a model and the `generate` wrapper bound to it) that only the cycle collector breaks, the
CUDA caching allocator keeps freed blocks reserved, and glibc keeps freed heap pages mapped. So
`release()` closes engines (vLLM reserves 85% of the GPU until closed), collects cycles, empties the
CUDA cache and returns free heap pages to the OS.

`malloc_for(stage)` keeps glibc from growing its heap with a rollout's KV caches in the first place.
"""

from __future__ import annotations

import ctypes
import functools
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
    trim()


def trim(device: Any = None) -> None:
    """Hand freed heap pages back to the OS (glibc's `malloc_trim`; nothing elsewhere). Given the
    torch `device` whose memory was just freed, only when it is the CPU (an accelerator's blocks are
    not on glibc's heap).

    Once a stage has freed its models, glibc's heap is mostly free chunks: trimmed, they hold no
    memory, but glibc serves later blocks from them before it maps new ones, whatever the mmap
    threshold, and a freed heap block stays resident until the next trim. So a rollout that follows
    training in the same process kept each round's freed KV caches resident: the quickstart's
    evaluation peaked at 3.83 GB after training, 3.21 GB alone (README, Quickstart). The hf
    backend trims as each layer's caches move between its rows and the batch, and after each
    CPU generation call (a few dozen trims a call)."""
    if device is not None and device.type != "cpu":
        return
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):  # a CPU run's RSS would stay at its peak otherwise
        libc.malloc_trim(0)


@functools.cache
def _glibc() -> Any:
    """glibc, loaded once (`trim` runs dozens of times a generation call); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # a Linux without glibc (musl)
        return None


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
STEADY_THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed: rollouts
TRAINING_THRESHOLD = 1024 * 1024  # training and the other stages: blocks of a layer's activations and up
ROLLOUT_STAGES = ("generate", "evaluate")


def malloc_for(stage: str) -> bool:
    """Set glibc's mmap threshold for `stage`; returns whether it was set.

    By default glibc raises the threshold to the size of each large block freed (up to 32 MiB),
    after which blocks of that size come from the heap, where a freed block only goes back to the
    system when everything above it is free too. A CPU rollout frees and reallocates every row's
    KV cache each round at new sizes, which leaves the heap at its high-water mark; with the
    threshold fixed at 128 KiB each such block is mapped on its own and unmapped when freed.
    Measured side by side (one thread each, README "Benchmarks"): the quickstart's base evaluation
    peak RSS 4.11 -> 3.31 GB, 1.03x the time, the same trajectories. Training frees and reallocates
    its activations every step: at 128 KiB its peak fell 4.07 -> 2.68 GB but took 1.4x the time (it
    maps and faults in every block anew); at 1 MiB, where a layer's activations for a ~600-token
    state (1.4-3.7 MB each on the embedded model) are still mapped on their own, 4.04-4.09 ->
    3.15-3.26 GB at ~1.08x the time (2 MiB: 3.95 GB; glibc's own: the high-water mark), so the
    other stages get 1 MiB (one `swirl-lite run` goes through all). A user's
    MALLOC_MMAP_THRESHOLD_ wins (glibc read it at start); without glibc (macOS, musl) nothing
    changes."""
    import os

    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    threshold = STEADY_THRESHOLD if stage in ROLLOUT_STAGES else TRAINING_THRESHOLD
    ok = libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1
    return bool(ok and libc.mallopt(M_TRIM_THRESHOLD, 2 * threshold) == 1)


def rss_gb() -> float:
    """This process's resident memory now (Linux /proc; 0.0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 1024**3


class StagePeak:
    """Wall time and peak memory of the code run inside it: `with StagePeak() as peak: ...`, then
    `peak.figures()`. RSS is sampled by a daemon thread (every `interval_s`; Linux, else 0): the
    process's `ru_maxrss` cannot be reset, so it cannot tell which stage of a run set it. On CUDA,
    also the peak of allocated GPU memory (the counter is reset on entry)."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s = interval_s
        self.rss_peak = 0.0
        self.seconds = 0.0
        self.vram_peak: float | None = None

    def __enter__(self) -> StagePeak:
        import threading
        import time

        self._started = time.perf_counter()
        self._stop = threading.Event()
        self.rss_peak = rss_gb()
        torch = sys.modules.get("torch")
        self._cuda = torch is not None and torch.cuda.is_available()
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, name="swirl-lite-rss", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.rss_peak = max(self.rss_peak, rss_gb())

    def __exit__(self, *exc: object) -> None:
        import time

        self._stop.set()
        self._thread.join()
        self.rss_peak = max(self.rss_peak, rss_gb())
        self.seconds = time.perf_counter() - self._started
        torch = sys.modules.get("torch")
        if self._cuda or (torch is not None and torch.cuda.is_available()):
            self.vram_peak = torch.cuda.max_memory_allocated() / 1024**3

    def figures(self) -> dict[str, float]:
        """{"wall_s", "peak_rss_gb"[, "peak_vram_gb"]}, rounded for the manifest."""
        out = {"wall_s": round(self.seconds, 1), "peak_rss_gb": round(self.rss_peak, 2)}
        if self.vram_peak is not None:
            out["peak_vram_gb"] = round(self.vram_peak, 2)
        return out
