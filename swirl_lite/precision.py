"""The dtype a model computes in, chosen per device (`model.dtype: auto`).

| device                           | most models | Gemma 3  |
|----------------------------------|-------------|----------|
| no CUDA device                   | float32     | float32  |
| compute capability >= 8.0 (A100) | bfloat16    | bfloat16 |
| compute capability < 8.0 (T4)    | float16     | float32  |

Why not `torch.cuda.is_bf16_supported()`: it answers True on a T4, where bf16 is emulated (slow,
and without the memory-efficient attention kernel), and unsloth, which loads such a card's models in
fp16, then refuses a bf16 trainer ("Model is in float16 precision but you want to use bfloat16").
Gemma 3's activations overflow fp16, so on those cards it computes in fp32 (as unsloth does too).
One choice feeds everything: the load dtype, `bnb_4bit_compute_dtype`, and the trainer's bf16/fp16
flags. With unsloth the load dtype is left to unsloth (it applies the same table); an explicit
`model.dtype` overrides the table everywhere.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swirl_lite.config import ModelConfig

NATIVE_BF16 = (8, 0)  # Ampere and later
FP16_OVERFLOW = re.compile(r"gemma[-_ ]?3")  # families whose activations overflow float16


@dataclass(frozen=True)
class Precision:
    dtype: str  # "float32" | "bfloat16" | "float16"
    reason: str
    on_gpu: bool

    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    def trainer_flags(self) -> dict[str, bool]:
        """TrainingArguments' mixed-precision flags (never on CPU; none for fp32)."""
        return {"bf16": self.on_gpu and self.dtype == "bfloat16", "fp16": self.on_gpu and self.dtype == "float16"}


def device_capability() -> tuple[int, int] | None:
    """(major, minor) of this process's CUDA device, None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(int(os.environ.get("LOCAL_RANK", 0)))
    return int(major), int(minor)


def overflows_fp16(cfg: ModelConfig) -> bool:
    """Gemma 3, by the local folder's config.json `model_type` or else by the model's name."""
    config = Path(cfg.name) / "config.json"
    if config.is_file():
        try:
            kind = str(json.loads(config.read_text()).get("model_type", ""))
        except (OSError, ValueError):
            kind = ""
        if kind:
            return bool(FP16_OVERFLOW.search(kind))
    return bool(FP16_OVERFLOW.search(cfg.name.lower()))


def choose(cfg: ModelConfig, capability: tuple[int, int] | None | str = "detect") -> Precision:
    """The precision for `cfg` on the device with `capability` ("detect": this machine's)."""
    cap = device_capability() if capability == "detect" else capability
    on_gpu = cap is not None
    where = "no CUDA device" if cap is None else f"compute capability {cap[0]}.{cap[1]}"
    if cfg.dtype != "auto":
        note = " (emulated, slow)" if cfg.dtype == "bfloat16" and on_gpu and cap < NATIVE_BF16 else ""
        return Precision(cfg.dtype, f"model.dtype set{note}", on_gpu)
    if cap is None:
        return Precision("float32", where, on_gpu)
    if cap >= NATIVE_BF16:
        return Precision("bfloat16", f"{where}: native bf16", on_gpu)
    if overflows_fp16(cfg):
        return Precision("float32", f"{where}: no native bf16, and Gemma 3 overflows fp16", on_gpu)
    return Precision("float16", f"{where}: no native bf16", on_gpu)
