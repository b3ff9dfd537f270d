"""Few-row linear layers on CPU: the same function as `nn.Linear`, swapped only where it is faster."""

from __future__ import annotations

import pytest
import torch

from swirl_lite import few_rows


def _layer(out_f: int, in_f: int, bias: bool) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(in_f, out_f, bias=bias)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(5,), (3, 1), (4, 8), (1, 40)])  # rows 5, 3, 32 (few-row form); 40, 1 (F.linear)
def test_few_row_linear_computes_what_nn_linear_computes(shape, bias):
    plain = _layer(1024, 512, bias)
    few = _layer(1024, 512, bias)
    few.__class__ = few_rows.FewRowLinear
    x = torch.randn(*shape, 512, requires_grad=True)
    y_plain, y_few = plain(x), few(x)
    assert y_few.shape == y_plain.shape == (*shape, 1024) and y_few.is_contiguous()
    torch.testing.assert_close(y_few, y_plain, rtol=1e-5, atol=1e-5)
    (grad_plain,) = torch.autograd.grad(y_plain.square().sum(), x)
    (grad_few,) = torch.autograd.grad(y_few.square().sum(), x)
    torch.testing.assert_close(grad_few, grad_plain, rtol=1e-4, atol=1e-4)


def test_only_large_float32_cpu_linear_layers_are_swapped():
    class Own(torch.nn.Linear):
        pass

    model = torch.nn.ModuleDict({
        "big": torch.nn.Linear(1024, 1024),           # 1M weights: swapped
        "small": torch.nn.Linear(576, 192),           # SmolLM2's k/v size: the transposed copy costs more
        "bf16": torch.nn.Linear(1024, 1024).to(torch.bfloat16),
        "own": Own(1024, 1024),                       # a subclass (as a quantized layer is): left alone
    })
    assert few_rows.use_few_row_linear(model) == 1
    assert type(model["big"]) is few_rows.FewRowLinear and isinstance(model["big"], torch.nn.Linear)
    assert type(model["small"]) is torch.nn.Linear and type(model["bf16"]) is torch.nn.Linear
    assert type(model["own"]) is Own
    assert few_rows.use_few_row_linear(model) == 0  # idempotent


def test_load_model_swaps_the_output_layer_and_lora_still_wraps_and_merges_it(tiny_model_dir):
    from swirl_lite.config import ModelConfig
    from swirl_lite.models import load_model

    loaded = load_model(ModelConfig(name=tiny_model_dir), lora=True, trainable=True)
    model = loaded.model
    head = model.get_output_embeddings()
    assert type(head) is few_rows.FewRowLinear  # 49,152 x 64: large enough
    layers = [m for m in model.modules() if type(m) is few_rows.FewRowLinear]
    assert layers == [head]  # the tiny model's 64-wide projections stay plain
    ids = torch.randint(5, 1000, (4, 1))
    before = model(input_ids=ids).logits
    for name, p in model.named_parameters():  # move the LoRA weights so a merge changes the base
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    with torch.no_grad():
        unmerged = model(input_ids=ids).logits
        model.merge_adapter()
        merged = model(input_ids=ids).logits
    assert not torch.allclose(unmerged, before)
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-4)
