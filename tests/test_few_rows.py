"""Few-row linear layers on CPU: the same function as `nn.Linear`, swapped only where it is faster."""

from __future__ import annotations

import pytest
import torch

from swirl_lite import few_rows


def _layer(out_f: int, in_f: int, bias: bool) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(in_f, out_f, bias=bias)


@pytest.fixture
def linear_calls(monkeypatch):
    """Rows of each `F.linear` call (to tell which form a layer took)."""
    calls: list[int] = []
    original = torch.nn.functional.linear

    def counted(x, weight, bias=None):
        calls.append(x.numel() // x.shape[-1] if x.shape[-1] else 0)
        return original(x, weight, bias)

    monkeypatch.setattr(torch.nn.functional, "linear", counted)
    return calls


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape, transposed", [
    ((2,), True), ((3, 1), True), ((4, 8), True),        # 2, 3 and 32 rows: (weight @ x.T).T
    ((1, 40), False), ((33,), False), ((1,), False),     # 40, 33, 1 row: F.linear
    ((), False), ((0,), False),                          # a 1-D input; no rows
])
def test_few_row_linear_computes_what_nn_linear_computes(shape, transposed, bias, linear_calls):
    plain = _layer(1024, 512, bias)
    few = _layer(1024, 512, bias)
    few.__class__ = few_rows.FewRowLinear
    x = torch.randn(*shape, 512, requires_grad=True)
    y_few = few(x)
    assert (linear_calls == []) == transposed  # the form the layer took
    y_plain = plain(x)
    assert y_few.shape == y_plain.shape == (*shape, 1024) and y_few.is_contiguous()
    torch.testing.assert_close(y_few, y_plain, rtol=1e-5, atol=1e-5)
    if y_plain.numel():
        grads_plain = torch.autograd.grad(y_plain.square().sum(), (x, plain.weight))
        grads_few = torch.autograd.grad(y_few.square().sum(), (x, few.weight))
        for got, want in zip(grads_few, grads_plain, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_moved_or_cast_layer_falls_back_to_f_linear(linear_calls):
    few = _layer(1024, 512, False).to(torch.bfloat16)
    few.__class__ = few_rows.FewRowLinear
    few(torch.randn(4, 512, dtype=torch.bfloat16))
    assert linear_calls == [4]


def test_only_large_float32_cpu_linear_layers_are_swapped():
    class Own(torch.nn.Linear):
        pass

    model = torch.nn.ModuleDict({
        "big": torch.nn.Linear(1024, 1024),           # 1M weights: swapped
        "small": torch.nn.Linear(576, 192),           # SmolLM2's k/v size: the transposed copy costs more
        "bf16": torch.nn.Linear(1024, 1024).to(torch.bfloat16),
        "meta": torch.nn.Linear(1024, 1024, device="meta"),
        "own": Own(1024, 1024),                       # a subclass (as a quantized layer is): left alone
    })
    assert few_rows.use_few_row_linear(model) == 1
    assert type(model["big"]) is few_rows.FewRowLinear and isinstance(model["big"], torch.nn.Linear)
    assert all(type(model[k]) is torch.nn.Linear for k in ("small", "bf16", "meta"))
    assert type(model["own"]) is Own
    assert few_rows.use_few_row_linear(model) == 0  # idempotent


def test_the_environment_turns_it_off(monkeypatch):
    monkeypatch.setenv("SWIRL_LITE_FEW_ROWS", "0")
    model = torch.nn.Sequential(torch.nn.Linear(1024, 1024))
    assert few_rows.use_few_row_linear(model) == 0 and type(model[0]) is torch.nn.Linear


@pytest.mark.parametrize("arch", ["tiny_model_dir", "tiny_gemma_dir"])  # Llama; Gemma 3, tied output layer
def test_load_model_swaps_large_layers_and_lora_wraps_and_merges_them(arch, request, monkeypatch):
    """With MIN_WEIGHT lowered, the tiny models' MLP layers swap too, as SmolLM2's do: peft wraps
    them (LoRA on every linear layer) and merges into them, with the logits of plain layers."""
    from swirl_lite.config import ModelConfig
    from swirl_lite.models import load_model

    monkeypatch.setattr(few_rows, "MIN_WEIGHT", 128 * 64)
    model = load_model(ModelConfig(name=request.getfixturevalue(arch)), lora=True, trainable=True).model
    swapped = [m for m in model.modules() if type(m) is few_rows.FewRowLinear]
    wrapped = [m for m in model.modules() if hasattr(m, "base_layer") and type(m.base_layer) is few_rows.FewRowLinear]
    assert model.get_output_embeddings() in swapped and wrapped  # the MLP's base layers, under LoRA
    assert len(swapped) == len(wrapped) + 1  # every swapped layer but the output layer is wrapped
    for name, p in model.named_parameters():  # move the LoRA weights so the adapter changes the output
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    ids = torch.randint(5, 1000, (4, 1))  # 4 rows: the transposed form

    def logits(cls):
        for m in swapped:
            m.__class__ = cls
        with torch.no_grad():
            return model(input_ids=ids).logits

    plain, few = logits(torch.nn.Linear), logits(few_rows.FewRowLinear)
    torch.testing.assert_close(few, plain, rtol=1e-4, atol=1e-4)
    with torch.no_grad(), model.disable_adapter():
        base = model(input_ids=ids).logits
    assert not torch.allclose(few, base)  # the adapter is live through the swapped base layers
    model.merge_adapter()
    assert all(type(m.base_layer) is few_rows.FewRowLinear for m in wrapped)
    torch.testing.assert_close(logits(few_rows.FewRowLinear), plain, rtol=1e-4, atol=1e-4)
