"""Linear layers on CPU with few rows (a decode step's batch) as `weight @ x.T`, not `x @ weight.T`.

A decode step feeds each linear layer one token per row, so 2 to 32 rows against the whole weight.
torch computes `F.linear` as `x @ weight.T`, and MKL's single-precision GEMM is slow in that shape on
the AMD EPYC we run on: the embedded model's output layer (49,152 x 576) took 57 ms for 16 rows,
five times its 10.5 ms for one row, where the transposed product `(weight @ x.T).T` took 27 ms; the
MLP's 1536 x 576 layers 0.78 vs 0.59 ms (2 threads, `swirl-lite bench linear`, which measures any
machine). The recipes decode at most 32 rows at a time, so MAX_ROWS is 32: at 48 rows the
transposed form was still faster here (0.63x, 0.89x), at 600 (a prefill chunk) 4-13% slower, so
prefill and the training loss keep `F.linear`. The numbers were the same bit for bit at 16, 32 and
48 rows; at 4 rows the sums ran in another order (last-bit differences, as another thread count or
BLAS build gives: README, "Reproducibility"); greedy decoding gave the same tokens.

`use_few_row_linear` swaps the class of a model's large plain float32 CPU `nn.Linear` layers for
`FewRowLinear` (still an `nn.Linear`: peft wraps it and merges into its weight as before). Written
here because neither torch nor MKL picks the faster form for this shape, and no setting reaches it
(MKL_ENABLE_INSTRUCTIONS and MKL_CBWR were measured: no or a partial gain). Measured on that EPYC
only; `SWIRL_LITE_FEW_ROWS=0` keeps every layer plain.
"""

from __future__ import annotations

import os
from typing import Any

import torch

MAX_ROWS = 32  # the largest decode batch of the recipes (generate.batch_size); prefill stays F.linear
MIN_WEIGHT = 2**19  # smaller layers (SmolLM2's 576 x 576 and 192 x 576) only break even at 16-32 rows
# (0.96-1.06x the time): not swapped. The MLP (1536 x 576) and the output layer gain.


def transposed_at(rows: int) -> bool:
    """Whether a swapped layer multiplies `rows` rows as `(weight @ x.T).T`."""
    return 1 < rows <= MAX_ROWS


class FewRowLinear(torch.nn.Linear):
    """`nn.Linear` that multiplies as `(weight @ x.T).T` when the input has 2 to MAX_ROWS rows (at one
    row, a matrix-vector product, `F.linear` is as fast or faster)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1] if x.dim() > 1 and x.shape[-1] else 0
        if not (transposed_at(rows) and x.device.type == "cpu" and self.weight.dtype == torch.float32):
            return torch.nn.functional.linear(x, self.weight, self.bias)  # also after a move or cast
        flat = x.reshape(rows, x.shape[-1]).t()
        out = (torch.mm(self.weight, flat) if self.bias is None
               else torch.addmm(self.bias[:, None], self.weight, flat))
        return out.t().contiguous().reshape(*x.shape[:-1], self.out_features)


def eligible(module: Any) -> bool:
    """A plain float32 `nn.Linear` on CPU (not a quantized or subclassed layer) of at least MIN_WEIGHT
    weights."""
    return (type(module) is torch.nn.Linear and module.weight.device.type == "cpu"
            and module.weight.dtype == torch.float32 and module.weight.numel() >= MIN_WEIGHT)


def use_few_row_linear(model: Any) -> int:
    """Swap every eligible linear layer of `model` for FewRowLinear; returns how many. None with
    SWIRL_LITE_FEW_ROWS=0 in the environment (measured on one CPU kind only: `bench linear` on
    another tells whether to keep it)."""
    if os.environ.get("SWIRL_LITE_FEW_ROWS", "1").strip() == "0":
        return 0
    swapped = 0
    for module in model.modules():
        if eligible(module):
            module.__class__ = FewRowLinear
            swapped += 1
    return swapped
