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


def test_4bit_and_checkpointing_lower_the_estimate():
    base = {"model": {"name": "unsloth/Llama-3.2-1B-Instruct"}}
    full = estimate_memory(build_recipe({**base, "train": {"gradient_checkpointing": False}}))
    small = estimate_memory(
        build_recipe({"model": {"name": "unsloth/Llama-3.2-1B-Instruct", "load_in_4bit": True}})
    )
    assert full is not None and small is not None
    assert small.weights_gb < full.weights_gb / 3
    assert small.activations_gb < full.activations_gb
    assert abs(small.weights_gb - 1.24e9 * 0.56 / 1024**3) < 0.01  # Llama 3.2 1B in NF4


def test_unknown_model_gives_no_estimate():
    assert estimate_memory(build_recipe({"model": {"name": "someone/mystery-model"}})) is None
