"""`swirl-lite doctor` on a machine without a GPU says so plainly; the memory estimate behaves."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from swirl_lite.cli import main
from swirl_lite.config import build_recipe
from swirl_lite.doctor import PINS_FILE, estimate_memory
from swirl_lite.doctor import tested_pins as read_pins  # a name pytest would collect as a test


@pytest.mark.cpu_only
def test_doctor_without_gpu_says_so():
    result = CliRunner().invoke(main, ["doctor", "--offline"])
    assert result.exit_code == 0, result.output
    assert "no CUDA device" in result.output
    assert "transformers" in result.output and "Traceback" not in result.output


def test_pins_file_is_parsed():
    pins = read_pins(PINS_FILE)
    assert {"unsloth", "transformers", "trl", "peft", "bitsandbytes"} <= set(pins)


def _stages(recipe: dict, capability=(8, 0)) -> dict:
    return {s.stage: s for s in estimate_memory(build_recipe(recipe), capability)}


def test_4bit_and_checkpointing_lower_the_estimate():
    base = {"model": {"name": "unsloth/Llama-3.2-1B-Instruct"}}
    per_row = {"share_prompt": False}  # checkpointing is off where states are shared
    full = _stages({**base, "train": {**per_row, "gradient_checkpointing": False}})["train"]
    small = _stages({"model": {"name": "unsloth/Llama-3.2-1B-Instruct", "load_in_4bit": True}, "train": per_row})["train"]
    assert small.weights < full.weights / 2
    assert small.activations < full.activations


def test_4bit_weights_keep_the_embedding_in_16_bit():
    """Gemma 3 1B: 302M of its 1.0B parameters are the embedding, 2 bytes each in bf16, 4 in fp32."""
    gemma = {"model": {"name": "google/gemma-3-1b-it", "load_in_4bit": True}}
    bf16 = _stages(gemma)["generate"].weights
    embedding, body = 262144 * 1152, 1.0e9 - 262144 * 1152
    assert abs(bf16 - (body * 0.5 * 1.03 + embedding * 2) / 1024**3) < 1e-6
    assert bf16 > 1.0e9 * 0.56 / 1024**3 + 0.3  # the old all-NF4 figure left ~0.5 GB out
    t4 = _stages(gemma, (7, 5))["generate"].weights  # Gemma 3 in fp32 on a T4
    assert abs(t4 - bf16 - embedding * 2 / 1024**3) < 1e-6


def test_generate_counts_kv_cache_at_max_seq_length_and_the_mlp_width(tmp_path):
    llama = {"model": {"name": "unsloth/Llama-3.2-1B-Instruct", "load_in_4bit": True, "max_seq_length": 4096},
             "generate": {"batch_size": 32}}
    gen = _stages(llama)["generate"]
    # 32 rows x 4096 tokens x 16 layers x 8 kv heads x 64 x (k, v) x 2 bytes, kept twice by the hf backend
    assert abs(gen.kv_cache - 2 * 32 * 4096 * 16 * 8 * 64 * 2 * 2 / 1024**3) < 1e-6
    short = _stages({**llama, "model": {**llama["model"], "max_seq_length": 1024}})["generate"]
    assert short.kv_cache < gen.kv_cache / 3.9 and short.activations < gen.activations / 3.9
    import json

    for inter in (1024, 8192):  # the same model with a wider MLP needs more for the prefill
        folder = tmp_path / str(inter)
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"hidden_size": 512, "num_hidden_layers": 4,
                                                        "intermediate_size": inter, "vocab_size": 1000}))
    narrow, wide = (_stages({"model": {"name": str(tmp_path / str(i))}})["generate"] for i in (1024, 8192))
    assert wide.activations > 4 * narrow.activations


def test_gemma_keeps_every_position_where_caches_are_reused_and_its_window_in_trls_path():
    recipe = {"model": {"name": "google/gemma-3-1b-it", "max_seq_length": 4096}, "generate": {"batch_size": 32},
              "train": {"per_device_batch_size": 8, "max_prompt_length": 3072, "max_completion_length": 256}}
    full_kv = 32 * 4096 * 26 * 1 * 256 * 2 * 2 / 1024**3
    assert abs(_stages(recipe)["generate"].kv_cache - 2 * full_kv) < 1e-6  # every position, rows kept (x2)
    shared = _stages(recipe)["train"].kv_cache
    per_row = _stages({**recipe, "train": {**recipe["train"], "share_prompt": False}})["train"].kv_cache
    assert per_row < shared / 3  # TRL's own cache: 5 of 6 layers hold 512 tokens


def test_doctor_prints_one_row_per_stage_within_80_columns():
    result = CliRunner().invoke(main, ["doctor", "recipes/gsm8k-full.yaml", "--offline", "--capability", "7.5"])
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("peak memory per stage"):]
    rows = [line for line in table.splitlines() if line.startswith("│")]
    assert [r.split("│")[1].strip() for r in rows] == ["generate", "filter", "train", "evaluate"]
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "float32" in result.output  # Gemma 3 on a T4


def test_unknown_model_gives_no_estimate():
    assert estimate_memory(build_recipe({"model": {"name": "someone/mystery-model"}})) is None


def test_bad_capability_is_one_line():
    result = CliRunner().invoke(main, ["doctor", "recipes/gsm8k.yaml", "--offline", "--capability", "abc"])
    errors = [line for line in result.output.splitlines() if line.startswith("error")]
    assert result.exit_code == 2 and "Traceback" not in result.output  # a bad option: a usage error
    assert len(errors) == 1 and "--capability" in errors[0] and "expected MAJOR.MINOR" in errors[0]
