"""The KV-cache keyword across the supported transformers range (5.17: past_key_values, 5.24: cache)."""

from __future__ import annotations

import pytest

from swirl_lite import compat


class _NewForward:
    def forward(self, input_ids=None, cache=None, **kwargs):
        return None


class _OldForward:
    def forward(self, input_ids=None, past_key_values=None, **kwargs):
        return None


class _Opaque:
    def forward(self, *args, **kwargs):
        return None


def test_name_comes_from_the_forward_signature():
    assert compat.cache_kwarg(_NewForward()) == "cache"
    assert compat.cache_kwarg(_OldForward()) == "past_key_values"
    assert compat.with_cache(_OldForward(), "kv") == {"past_key_values": "kv"}
    assert compat.with_cache(_NewForward(), None) == {}


@pytest.mark.parametrize(("version", "name"), [("5.17.0", "past_key_values"), ("5.23.9", "past_key_values"),
                                               ("5.24.0", "cache"), ("5.30.0.dev0", "cache"), ("6.0.0", "cache")])
def test_without_a_declared_name_the_version_decides(monkeypatch, version, name):
    import transformers

    monkeypatch.setattr(transformers, "__version__", version)
    assert compat.cache_kwarg(_Opaque()) == name


def test_wrapped_model_finds_the_inner_forward(tiny_model_dir):
    """A peft-wrapped model declares the name only on the transformers model inside."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    inner = model.get_base_model()
    assert compat.cache_kwarg(model) == compat.cache_kwarg(inner)


def test_installed_transformers_fills_the_cache_under_that_name(tiny_model_dir):
    """The chosen keyword really reaches the cache: a wrong one is swallowed and the cache stays empty."""
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=torch.tensor([[1, 2, 3, 4]]), use_cache=True, **compat.with_cache(model, cache))
    assert cache.get_seq_length() == 4
    expected = "cache" if compat.transformers_version() >= compat.CACHE_RENAMED_IN else "past_key_values"
    assert compat.cache_kwarg(model) == expected
