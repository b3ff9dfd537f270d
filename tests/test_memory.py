"""Stages give their memory back when they end: models collected, engines closed, RSS back down."""

from __future__ import annotations

import gc
import os
import sys

import pytest

from swirl_lite.config import build_recipe
from swirl_lite.memory import rss_gb
from swirl_lite.pipeline import run_stage
from swirl_lite.runs import RunDir


def _recipe(tmp_path, model: str, name: str):
    return build_recipe({
        "model": {"name": model},
        "data": {"task": "arithmetic", "limit": 2},
        "generate": {"samples_per_question": 1, "max_new_tokens": 8, "max_steps": 1, "demonstrations": 0},
        "output": {"dir": str(tmp_path), "name": name},
    })


def _live_models() -> list:
    from transformers import PreTrainedModel

    return [o for o in gc.get_objects() if isinstance(o, PreTrainedModel)]


def test_rss_after_a_stage_returns_near_its_level_before(tmp_path, tiny_model_dir, embedded_path):
    """The train stage's model, trainer and judge (the embedded 135M model, ~0.5 GB in float32 plus
    optimiser state) are gone once it returns, though TRL and peft hold them in reference cycles."""
    # bitsandbytes, which peft imports in the first train stage, logs its failed offline kernel
    # download with exc_info; pytest's log capture keeps that record, and with its traceback every
    # frame down to the stage that imported it, and that stage's models, to the end of the test.
    # Imported here, outside any stage, as the rest of the suite does before this test runs.
    import bitsandbytes  # noqa: F401  (a dependency)
    from test_train import make_run

    warm, warm_run = make_run(tmp_path / "warm", tiny_model_dir, max_steps=1)  # imports, one-time buffers
    run_stage("train", warm, warm_run)
    gc.collect()
    before = rss_gb()
    recipe, run = make_run(tmp_path / "embedded", embedded_path, max_steps=1)
    assert run_stage("train", recipe, run)["steps"] == 1
    after = rss_gb()  # no gc.collect() here: the stage must have freed its models itself
    assert _live_models() == []
    assert after - before < 0.25, f"RSS {before:.2f} GB before the stage, {after:.2f} GB after"


def test_generate_closes_the_engine_it_built(tmp_path, monkeypatch, tiny_model_dir):
    from transformers import AutoTokenizer

    from swirl_lite import backends
    from swirl_lite.backends.scripted import ScriptedLLM

    closed = []

    class Engine(ScriptedLLM):
        def close(self) -> None:
            closed.append(True)

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    monkeypatch.setattr(backends, "make_llm", lambda recipe, loaded=None: Engine(lambda m: "<answer>1</answer>", tokenizer=tok))
    recipe = _recipe(tmp_path, tiny_model_dir, "engine")
    run_stage("generate", recipe, RunDir.for_recipe(recipe))
    assert closed == [True]


def test_vllm_close_shuts_the_engine_down_once():
    from swirl_lite.backends.vllm import VLLMLLM

    calls = []

    class Core:
        def shutdown(self):
            calls.append("shutdown")

    class Engine:
        llm_engine = type("LLMEngine", (), {"engine_core": Core()})()

        def get_tokenizer(self):
            return None

    llm = VLLMLLM(Engine(), max_context=128)
    llm.close()
    llm.close()
    assert calls == ["shutdown"] and not hasattr(llm, "engine")


STEADY_PROBE = """
import ctypes, sys
from swirl_lite.memory import malloc_for

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
print(malloc_for(sys.argv[1]) if sys.argv[1] != "default" else "default")
size = int(sys.argv[2])  # a block freed, then asked for again
libc.free(libc.malloc(size))  # glibc by default raises its mmap threshold to this size here
before = libc.mallinfo2().hblkhd
block = libc.malloc(size)
print(libc.mallinfo2().hblkhd - before >= size)  # the second block is mapped on its own (not from the heap)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
@pytest.mark.parametrize("mode, size, mapped", [
    ("evaluate", 512 << 10, True), ("generate", 4 << 20, True), ("train", 512 << 10, False),
    ("train", 4 << 20, True), ("default", 4 << 20, False),
])
def test_stages_map_their_large_blocks_on_their_own(mode, size, mapped):
    """A block freed and asked for again is mapped on its own (and so unmapped when freed) above
    the stage's threshold: 128 KiB in rollout stages, 1 MiB in training; glibc's default serves a
    4 MiB one from the heap after the first is freed."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", STEADY_PROBE, mode, str(size)], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout.split()
    if mode != "default":
        assert out[0] == "True"  # the threshold was set
    assert out[1] == str(mapped)


def test_a_users_malloc_setting_wins(monkeypatch):
    from swirl_lite.memory import malloc_for

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert malloc_for("evaluate") is False
