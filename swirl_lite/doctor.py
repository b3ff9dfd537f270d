"""`swirl-lite doctor [RECIPE]`: what this machine has, against what swirl-lite was tested with.

Reports Python, torch, CUDA and the GPU with its free memory, the versions of the GPU stack against
the tested pins in `constraints/`, whether the model hub answers, and for a recipe a rough estimate of
peak memory against what is free, with advice when it will not fit.

The estimate is arithmetic, not a measurement: weights (4-bit ~0.56 byte/param with NF4 scales,
bf16 2, fp32 4) + LoRA with Adam states + activations for one micro-batch (checkpointed or not) +
the generation KV cache. `swirl-lite bench train` measures the real number.
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from swirl_lite.config import Recipe

PINS_FILE = Path(__file__).resolve().parent / "data" / "constraints-gpu.txt"
STACK = ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets", "unsloth", "unsloth-zoo", "vllm")
# Architecture sizes of common small instruct models, for estimates without downloading a config.
KNOWN = {  # name fragment: (params, layers, hidden)
    "smollm2-135m": (135e6, 30, 576),
    "embedded": (135e6, 30, 576),
    "gemma-3-1b": (1.0e9, 26, 1152),
    "llama-3.2-1b": (1.24e9, 16, 2048),
    "llama-3.2-3b": (3.2e9, 28, 3072),
    "qwen2.5-1.5b": (1.54e9, 28, 1536),
    "qwen2.5-0.5b": (0.49e9, 24, 896),
}


def tested_pins(path: Path = PINS_FILE) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def installed(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


@dataclass
class Estimate:
    params: float
    weights_gb: float
    lora_gb: float
    activations_gb: float
    kv_cache_gb: float

    @property
    def total_gb(self) -> float:
        # 15% for the CUDA context, allocator fragmentation and temporary buffers.
        return 1.15 * (self.weights_gb + self.lora_gb + self.activations_gb + self.kv_cache_gb)


def model_shape(recipe: Recipe) -> tuple[float, int, int] | None:
    """(params, layers, hidden) from a local config.json, else from the known-model table."""
    folder = Path(recipe.model.name)
    config = folder / "config.json"
    if config.is_file():
        import json

        cfg = json.loads(config.read_text())
        hidden, layers = cfg.get("hidden_size"), cfg.get("num_hidden_layers")
        inter, vocab = cfg.get("intermediate_size", 4 * (hidden or 0)), cfg.get("vocab_size", 32000)
        if hidden and layers:
            return (layers * (4 * hidden * hidden + 3 * hidden * inter) + vocab * hidden, layers, hidden)
    key = re.sub(r"[^a-z0-9.]+", "-", recipe.model.name.lower())
    for fragment, shape in KNOWN.items():
        if fragment in key:
            return shape
    match = re.search(r"(\d+(?:\.\d+)?)([mb])\b", key.replace("-", " "))
    if match:
        params = float(match.group(1)) * (1e6 if match.group(2) == "m" else 1e9)
        layers = max(12, int(12 + 6 * params / 1e9))
        return params, layers, int((params / (12 * layers)) ** 0.5)
    return None


def estimate_memory(recipe: Recipe, on_gpu: bool = True) -> Estimate | None:
    shape = model_shape(recipe)
    if shape is None:
        return None
    params, layers, hidden = shape
    if recipe.model.load_in_4bit:
        per_param = 0.56
    else:
        per_param = 2.0 if on_gpu else 4.0
    weights = params * per_param
    scale = 1 if on_gpu else 2  # fp32 on CPU doubles every activation
    lora_params = layers * 7 * 2 * hidden * recipe.model.lora.r  # all-linear, A and B (approx.)
    lora = lora_params * (4 + 4 + 4 + 4)  # fp32 weights, grads, Adam m and v
    tokens = recipe.train.per_device_batch_size * (recipe.train.max_prompt_length + recipe.train.max_completion_length)
    # Korthikanti et al.: ~34*h bytes per token per layer in 16-bit without recomputation; with
    # checkpointing only each layer's input (2*h) is kept, plus one layer's full set during backward.
    if recipe.train.gradient_checkpointing:
        activations = tokens * hidden * (2 * layers + 34) * scale
    else:
        activations = tokens * hidden * 34 * layers * scale
    # KV cache of one generation batch; grouped-query attention keeps ~1/4 of the hidden size per token.
    # x2: the hf backend keeps each row's cache between steps while the next batch cache is built.
    seq = min(recipe.model.max_seq_length, recipe.train.max_prompt_length + recipe.generate.max_new_tokens)
    kv = 2 * 2 * layers * (hidden // 4) * 2 * scale * recipe.generate.batch_size * seq
    gb = 1024**3
    return Estimate(params, weights / gb, lora / gb, activations / gb, kv / gb)


def hub_reachable(timeout: float = 3.0) -> bool:
    import httpx

    try:
        return httpx.head("https://huggingface.co", timeout=timeout, follow_redirects=True).status_code < 500
    except httpx.HTTPError:
        return False


def run_doctor(recipe: Recipe | None, check_hub: bool = True) -> list[tuple[str, str, str]]:
    """Rows (check, value, verdict) for the summary table; verdict is ok / warn / info."""
    rows: list[tuple[str, str, str]] = [("python", platform.python_version(), "ok")]
    try:
        import torch
    except ImportError:
        return [*rows, ("torch", "not installed", "warn: pip install torch")]
    rows.append(("torch", torch.__version__, "ok"))
    free_gb = None
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        free_gb = free / 1024**3
        rows.append(("GPU", torch.cuda.get_device_name(0), "ok"))
        rows.append(("GPU memory free", f"{free_gb:.1f} / {total / 1024**3:.1f} GB", "ok"))
    else:
        rows.append(("GPU", "none (no CUDA device)", "info: CPU only; fine for the quickstart, slow beyond"))
    pins = tested_pins()
    for name in STACK[1:]:
        version = installed(name)
        pin = pins.get(name)
        if version is None:
            optional = name in ("unsloth", "unsloth-zoo", "vllm")
            rows.append((name, "not installed", "info: optional" if optional else "warn: pip install -e ."))
        elif pin and version != pin:
            rows.append((name, version, f"warn: tested GPU stack pins {pin} (constraints-gpu.txt)"))
        else:
            rows.append((name, version, "ok"))
    if check_hub:
        reachable = hub_reachable()
        rows.append(("model hub", "reachable" if reachable else "unreachable",
                     "ok" if reachable else "info: use local paths and model.name: embedded"))
    if recipe is not None:
        from swirl_lite.precision import choose

        chosen = choose(recipe.model)
        rows.append(("precision", chosen.dtype, f"info: {chosen.reason}"))
        rows.extend(_memory_rows(recipe, free_gb))
    return rows


def _memory_rows(recipe: Recipe, free_gb: float | None) -> list[tuple[str, str, str]]:
    est = estimate_memory(recipe, on_gpu=free_gb is not None)
    if est is None:
        return [("peak memory (est.)", "unknown model size", "info: run swirl-lite bench train")]
    value = (f"{est.total_gb:.1f} GB (weights {est.weights_gb:.1f}, LoRA+Adam {est.lora_gb:.2f}, "
             f"activations {est.activations_gb:.1f}, KV cache {est.kv_cache_gb:.1f})")
    if free_gb is None:
        return [("peak memory (est.)", value, "info: no GPU to compare with")]
    if est.total_gb <= 0.9 * free_gb:
        return [("peak memory (est.)", value, f"ok: fits in {free_gb:.1f} GB free")]
    advice = []
    if not recipe.model.load_in_4bit:
        advice.append("model.load_in_4bit=true")
    if not recipe.train.gradient_checkpointing:
        advice.append("train.gradient_checkpointing=true")
    advice.append("lower train.per_device_batch_size (raise gradient_accumulation_steps)")
    advice.append("lower generate.batch_size or model.max_seq_length")
    return [("peak memory (est.)", value, f"warn: may not fit {free_gb:.1f} GB free; try " + ", ".join(advice))]
