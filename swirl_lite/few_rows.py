"""Linear layers on CPU with few rows (a decode step's batch) as `weight @ x.T`, not `x @ weight.T`.

A decode step feeds each linear layer one token per row, so 2 to 32 rows against the whole weight.
torch computes `F.linear` as `x @ weight.T`, and MKL's single-precision GEMM is slow in that shape on
the AMD EPYC we run on: the embedded model's output layer (49,152 x 576) took 53-58 ms for 16 rows,
five times its 11 ms for one row, where the transposed product `(weight @ x.T).T` took 24-26 ms; the
MLP's 1536 x 576 layers 0.72-0.77 vs 0.52-0.63 ms (2 threads; `swirl-lite bench linear` measures
any machine). From 48 rows on the two take the same time, so prefill and the training loss keep
`F.linear`. The numbers were the same bit for bit at 16, 32 and 48 rows; at 4 rows the sums ran in
another order (last-bit differences, as another thread count or BLAS build gives: README,
"Reproducibility"); greedy decoding gave the same tokens.

`use_few_row_linear` swaps the class of a model's large plain float32 CPU `nn.Linear` layers for
`FewRowLinear` (still an `nn.Linear`: peft wraps it and merges into its weight as before). Written
here because neither torch nor MKL picks the faster form for this shape, and no setting reaches it
(MKL_ENABLE_INSTRUCTIONS and MKL_CBWR were measured: no or a partial gain).
"""

from __future__ import annotations

from typing import Any

import torch

MAX_ROWS = 32  # from 48 rows on `F.linear` is as fast, with the same numbers (`bench linear`)
MIN_WEIGHT = 2**19  # smaller layers (SmolLM2's 576 x 576 and 192 x 576) lose more to the transposed
# copy than they gain: 1.06-1.4x the time at 16 rows; the MLP's 1536 x 576 and the output layer gain


class FewRowLinear(torch.nn.Linear):
    """`nn.Linear` that multiplies as `(weight @ x.T).T` when the input has 2 to MAX_ROWS rows (at one
    row, a matrix-vector product, `F.linear` is as fast or faster)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
        if not 1 < rows <= MAX_ROWS:
            return torch.nn.functional.linear(x, self.weight, self.bias)
        out = (self.weight @ x.reshape(rows, x.shape[-1]).t()).t().contiguous()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)


def eligible(module: Any) -> bool:
    """A plain float32 `nn.Linear` on CPU (not a quantized or subclassed layer) of at least MIN_WEIGHT
    weights."""
    return (type(module) is torch.nn.Linear and module.weight.device.type == "cpu"
            and module.weight.dtype == torch.float32 and module.weight.numel() >= MIN_WEIGHT)


def use_few_row_linear(model: Any) -> int:
    """Swap every eligible linear layer of `model` for FewRowLinear; returns how many."""
    swapped = 0
    for module in model.modules():
        if eligible(module):
            module.__class__ = FewRowLinear
            swapped += 1
    return swapped
