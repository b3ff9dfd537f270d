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


def test_torch_logprobs_match_the_definition_and_trls_kernel():
    """The TRL < 1.16 CPU fallback: log p(target) and entropy at temperature, with softcap, and grads."""
    import torch

    torch.manual_seed(0)
    hidden = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 8, dtype=torch.float64)
    targets = torch.tensor([0, 3, 10, 7, 7])
    logp, entropy, *_ = compat.TorchLogProbs.apply(hidden, weight, None, targets, 0.7, 4, 30.0, 1.0,
                                                   ("log_probs", "entropy"))
    z = 30.0 * torch.tanh((hidden @ weight.T) / 30.0) / 0.7
    ref = torch.log_softmax(z, -1)
    assert logp.dtype == torch.float64  # fp32 at least: float64 inputs stay float64
    torch.testing.assert_close(logp, ref[torch.arange(5), targets])
    torch.testing.assert_close(entropy, -(ref.exp() * ref).sum(-1))
    logp.sum().backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0
    try:
        from trl.kernels import ChunkedLogProbFunction  # TRL 1.16+: its own torch path on CPU
    except ImportError:
        return
    theirs = ChunkedLogProbFunction.apply(hidden.detach(), weight, None, targets, 0.7, 4, 30.0, 1.0,
                                          ("log_probs", "entropy"))
    torch.testing.assert_close(theirs[0].double(), logp.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(theirs[1].double(), entropy.detach(), rtol=1e-5, atol=1e-6)


def test_trl_logprobs_installed_only_where_missing(monkeypatch):
    from trl.trainer import utils

    original = utils._ChunkedLogProbFunction
    if original is not None:
        assert compat.ensure_trl_logprobs() is False and utils._ChunkedLogProbFunction is original
    monkeypatch.setattr(utils, "_ChunkedLogProbFunction", None)
    assert compat.ensure_trl_logprobs() is True
    assert utils._ChunkedLogProbFunction is compat.TorchLogProbs
