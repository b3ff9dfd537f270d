"""Precision by device, with the CUDA device mocked: T4 (7.5), A100 (8.0), none."""

from __future__ import annotations

import pytest

from swirl_lite.config import ModelConfig, Recipe

T4, A100 = (7, 5), (8, 0)
LLAMA, GEMMA = "meta-llama/Llama-3.2-1B-Instruct", "google/gemma-3-1b-it"


@pytest.fixture
def device(monkeypatch):
    """`device(cap)` makes torch report a CUDA card of that capability (None: no CUDA). The card
    also claims bf16 support, as a T4 does (emulated)."""
    import torch

    def set_device(cap):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cap is not None)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: cap)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    return set_device


@pytest.mark.parametrize(("cap", "name", "dtype"), [
    (T4, LLAMA, "float16"), (T4, GEMMA, "float32"),
    (A100, LLAMA, "bfloat16"), (A100, GEMMA, "bfloat16"),
    (None, LLAMA, "float32"), (None, GEMMA, "float32"),
])
def test_dtype_by_card_and_family(device, cap, name, dtype):
    from swirl_lite.models import compute_dtype
    from swirl_lite.precision import choose

    device(cap)
    chosen = choose(ModelConfig(name=name))
    assert chosen.dtype == dtype
    assert str(compute_dtype(ModelConfig(name=name))) == f"torch.{dtype}"
    assert ("no native bf16" in chosen.reason) == (cap == T4)


@pytest.mark.parametrize(("cap", "flags"), [
    (T4, {"bf16": False, "fp16": True}), (A100, {"bf16": True, "fp16": False}), (None, {"bf16": False, "fp16": False}),
])
def test_trainer_flags_follow_the_load_dtype(device, cap, flags):
    """GRPOConfig/SFTConfig get the flags of the dtype the model is loaded and 4-bit-computed in."""
    from swirl_lite.training.common import precision

    device(cap)
    recipe = Recipe.model_validate({"model": {"name": LLAMA, "load_in_4bit": True}})
    assert precision(recipe) == flags
    gemma = Recipe.model_validate({"model": {"name": GEMMA}})
    assert precision(gemma) == ({"bf16": True, "fp16": False} if cap == A100 else {"bf16": False, "fp16": False})


def test_4bit_compute_dtype_is_the_chosen_one(device, monkeypatch):
    """load_model hands the same dtype to from_pretrained and to bnb_4bit_compute_dtype (T4: fp16)."""
    import torch
    import transformers

    from swirl_lite import models

    device(T4)
    seen = {}

    class Stop(Exception):
        pass

    def fake_from_pretrained(path, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    monkeypatch.setattr(transformers, "BitsAndBytesConfig", lambda **kw: kw)
    with pytest.raises(Stop):
        models.load_model(ModelConfig(name=LLAMA, load_in_4bit=True, backend="hf"))
    assert seen["dtype"] == torch.float16
    assert seen["quantization_config"]["bnb_4bit_compute_dtype"] == torch.float16


def test_model_dtype_overrides(device):
    from swirl_lite.precision import choose

    device(T4)
    chosen = choose(ModelConfig(name=LLAMA, dtype="bfloat16"))
    assert chosen.dtype == "bfloat16" and "emulated" in chosen.reason
    device(A100)
    assert choose(ModelConfig(name=GEMMA, dtype="float32")).trainer_flags() == {"bf16": False, "fp16": False}


def test_gemma_found_by_local_config(tmp_path, device):
    from swirl_lite.precision import choose

    (tmp_path / "config.json").write_text('{"model_type": "gemma3_text"}')
    device(T4)
    assert choose(ModelConfig(name=str(tmp_path))).dtype == "float32"


def test_doctor_prints_the_choice_and_why(device):
    from swirl_lite.doctor import run_doctor

    device(None)
    rows = {check: (value, verdict) for check, value, verdict in run_doctor(
        Recipe.model_validate({"model": {"name": LLAMA}}), check_hub=False)}
    assert rows["precision"][0] == "float32"
    assert "no CUDA device" in rows["precision"][1]
