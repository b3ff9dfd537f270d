"""Shared key/value heads on CPU: the same attention, fewer bytes kept for the backward pass."""

from __future__ import annotations

import pytest

from swirl_lite import attention


@pytest.fixture
def restored():
    attention.restore()
    yield
    attention.restore()


def _loss_pass(model, ids, mask):
    """Logits, parameter gradients and the bytes autograd kept, for one padded forward/backward."""
    import torch

    kept = [0]

    def pack(t):
        kept[0] += t.numel() * t.element_size()
        return t

    model.zero_grad()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(input_ids=ids, attention_mask=mask).logits
    (logits * mask[..., None]).float().pow(2).mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads, kept[0]


@pytest.mark.parametrize("arch", ["tiny_model_dir", "tiny_gemma_dir"])  # Llama; Gemma 3, one sliding layer
def test_shared_heads_give_the_same_attention_with_less_kept(arch, request, restored):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(request.getfixturevalue(arch), dtype=torch.float32)
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # a GQA model
    torch.manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (3, 40))
    mask = torch.ones_like(ids)
    mask[0, :7] = 0  # left padding: transformers passes a mask, so it copied the heads
    mask[1, :2] = 0
    logits, grads, kept = _loss_pass(model, ids, mask)
    assert attention.use_shared_heads_on_cpu()
    logits_shared, grads_shared, kept_shared = _loss_pass(model, ids, mask)
    assert torch.equal(logits_shared, logits)
    assert grads.keys() == grads_shared.keys() and grads
    for name, g in grads.items():
        torch.testing.assert_close(grads_shared[name], g, rtol=1e-5, atol=1e-6, msg=name)
    c = model.config  # what is no longer kept: every layer's key and value copies for the extra heads
    head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    copies = c.num_hidden_layers * 2 * ids.numel() * (c.num_attention_heads - c.num_key_value_heads) * head * 4
    assert kept - kept_shared == copies, (kept, kept_shared, copies)


def test_only_cpu_changes_and_twice_is_once(restored):
    import torch
    from transformers.integrations import sdpa_attention

    original = sdpa_attention.use_gqa_in_sdpa
    mask = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    key = torch.zeros(1, 1, 2, 4)
    assert attention.use_shared_heads_on_cpu() and attention.use_shared_heads_on_cpu()
    patched = sdpa_attention.use_gqa_in_sdpa
    assert patched.original is original  # wrapped once, not twice
    assert patched(mask, key, key) is True
    elsewhere = key.to("meta")  # any other device: transformers' own answer (a mask: no)
    assert patched(mask, elsewhere, elsewhere) == original(mask, elsewhere, elsewhere)
    attention.restore()
    assert sdpa_attention.use_gqa_in_sdpa is original
