"""Peak memory per stage, by arithmetic: `swirl-lite doctor RECIPE` prints it as a table.

Not a measurement (`swirl-lite bench gpu` measures): what each stage holds at its peak.

- weights: the body in NF4 (0.5 byte/param + ~3% scales), but the embedding (and an untied LM head)
  stay in the compute dtype: 302M of Gemma 3 1B's 1.0B parameters, 2 bytes each (4 in fp32 on a T4);
  without 4-bit, every parameter in the compute dtype.
- KV cache: 2 x layers x kv_heads x head_dim per token, for the whole batch at `max_seq_length`;
  generate/evaluate: x2, since the hf backend keeps each row's cache while it builds the next
  round's batch. Sliding-window layers (5 in 6 of Gemma 3's) keep every position there too
  (`backends.hf.plain_cache`: what lets rows reuse their caches), and in training with
  `train.share_prompt`; only TRL's own per-row path keeps just their window.
- activations: inference (generate, filter, evaluate) holds one layer's prefill at a time, whose
  widest part is the gated MLP (gate and up: 2 x intermediate per token); training keeps per token
  and layer ~18 x hidden + 8 x intermediate bytes in 16-bit (Korthikanti et al. with a gated MLP),
  or only each layer's input with gradient checkpointing, plus one layer's full set. With
  `train.share_prompt` each group's state is in the batch once, beside its G actions; there
  gradient checkpointing keeps of a state only its keys, values and each layer's input, and of
  the actions each layer's input (both recomputed in the backward pass one layer at a time:
  `training/shared_prompt.py`).
- LoRA + Adam: fp32 adapter weights, gradients and two Adam moments (all-linear targets).
- logits: fp32 over the vocabulary for one position per row, twice (the softmax of sampling).
The total adds 15% for the CUDA context, allocator fragmentation and temporary buffers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from swirl_lite.config import Recipe

GB = 1024**3
OVERHEAD = 1.15


@dataclass(frozen=True)
class ModelShape:
    params: float
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool = True
    window: int = 0  # sliding-window length of the local layers (0: every layer attends to everything)
    full_share: float = 1.0  # share of layers with full attention

    @property
    def embedding(self) -> float:
        """Parameters kept in the compute dtype under 4-bit: the embedding, and an untied head."""
        return self.vocab * self.hidden * (1 if self.tied else 2)


# Published configs of common small instruct models, for estimates without downloading one.
KNOWN = {
    "smollm2-135m": ModelShape(134.5e6, 30, 576, 1536, 49152, 9, 3, 64),
    # before "embedded", which its name contains: google/gemma-3-270m (model.name: embedded-gemma)
    "embedded-gemma": ModelShape(268e6, 18, 640, 2048, 262144, 4, 1, 256, window=512, full_share=1 / 6),
    "gemma-3-270m": ModelShape(268e6, 18, 640, 2048, 262144, 4, 1, 256, window=512, full_share=1 / 6),
    "embedded": ModelShape(134.5e6, 30, 576, 1536, 49152, 9, 3, 64),
    "gemma-3-1b": ModelShape(1.0e9, 26, 1152, 6912, 262144, 4, 1, 256, window=512, full_share=1 / 6),
    "llama-3.2-1b": ModelShape(1.236e9, 16, 2048, 8192, 128256, 32, 8, 64),
    "llama-3.2-3b": ModelShape(3.21e9, 28, 3072, 8192, 128256, 24, 8, 128),
    "qwen2.5-1.5b": ModelShape(1.54e9, 28, 1536, 8960, 151936, 12, 2, 128),
    "qwen2.5-0.5b": ModelShape(0.49e9, 24, 896, 4864, 151936, 14, 2, 64),
}


def shape_from_config(cfg: dict) -> ModelShape | None:
    cfg = cfg.get("text_config", cfg)
    h, layers = cfg.get("hidden_size"), cfg.get("num_hidden_layers")
    if not h or not layers:
        return None
    heads = cfg.get("num_attention_heads", max(1, h // 64))
    kv, hd = cfg.get("num_key_value_heads", heads), cfg.get("head_dim") or h // heads
    inter, vocab = cfg.get("intermediate_size", 4 * h), cfg.get("vocab_size", 32000)
    tied = bool(cfg.get("tie_word_embeddings", True))
    types = cfg.get("layer_types") or []
    window = int(cfg.get("sliding_window") or 0) if types and "sliding_attention" in types else 0
    full = sum(t == "full_attention" for t in types) / len(types) if window else 1.0
    per_layer = 2 * h * heads * hd + 2 * h * kv * hd + 3 * h * inter
    return ModelShape(layers * per_layer + vocab * h * (1 if tied else 2), layers, h, inter, vocab, heads, kv, hd, tied,
                      window, full)


def model_shape(name: str) -> ModelShape | None:
    """From a local folder's config.json, else the known-model table by name."""
    config = Path(name) / "config.json"
    if config.is_file():
        return shape_from_config(json.loads(config.read_text()))
    key = re.sub(r"[^a-z0-9.]+", "-", name.lower())
    return next((shape for fragment, shape in KNOWN.items() if fragment in key), None)


@dataclass
class StageMemory:
    stage: str
    weights: float  # GiB, each part
    kv_cache: float
    activations: float
    lora_adam: float
    logits: float

    @property
    def total(self) -> float:
        return OVERHEAD * (self.weights + self.kv_cache + self.activations + self.lora_adam + self.logits)


def weights_gb(shape: ModelShape, load_in_4bit: bool, dtype_bytes: int) -> float:
    if not load_in_4bit:
        return shape.params * dtype_bytes / GB
    return ((shape.params - shape.embedding) * 0.5 * 1.03 + shape.embedding * dtype_bytes) / GB


def kv_gb(shape: ModelShape, rows: int, seq: int, dtype_bytes: int, windowed: bool = False) -> float:
    """Keys and values of `rows` sequences of `seq` tokens (`windowed`: local layers keep only their
    window, as transformers' own cache does; else every position, as the hf backend's caches do)."""
    local = min(seq, shape.window) if shape.window and windowed else seq
    per_row = shape.full_share * seq + (1 - shape.full_share) * local
    return rows * per_row * 2 * shape.layers * shape.kv_heads * shape.head_dim * dtype_bytes / GB


def prefill_gb(shape: ModelShape, tokens: int, dtype_bytes: int) -> float:
    """One layer's widest transient in inference: hidden states in and out, gate and up outputs."""
    return tokens * (2 * shape.intermediate + 4 * shape.hidden) * dtype_bytes / GB


def lora_gb(shape: ModelShape, r: int) -> float:
    q, kv, h, i = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.hidden, shape.intermediate
    per_layer = r * ((h + q) * 2 + (h + kv) * 2 + (h + i) * 2 + (i + h))
    return shape.layers * per_layer * 16 / GB  # fp32 weight, gradient, Adam m and v


def stage_memory(recipe: Recipe, dtype_bytes: int, seq: int | None = None) -> list[StageMemory] | None:
    """Peak memory of generate, filter, train and evaluate for `recipe` (None: unknown model size).

    At the recipe's limits (every row at `max_seq_length`, every state at `train.max_prompt_length`)
    unless `seq` gives the longest chat to expect instead (`plan`'s predicted lengths)."""
    shape = model_shape(recipe.model.name)
    if shape is None:
        return None
    m, g, t, j = recipe.model, recipe.generate, recipe.train, recipe.judge
    weights = weights_gb(shape, m.load_in_4bit, dtype_bytes)
    seq = min(seq, m.max_seq_length) if seq else m.max_seq_length
    prompt = min(seq, t.max_prompt_length)

    def logits(rows: int) -> float:
        return 2 * rows * shape.vocab * 4 / GB

    def inference(stage: str, batch: int) -> StageMemory:
        return StageMemory(stage, weights, 2 * kv_gb(shape, batch, seq, dtype_bytes),
                           prefill_gb(shape, batch * seq, dtype_bytes), 0.0, logits(batch))

    judged = "process" in recipe.filter.strategy and j.kind != "reference"
    if judged:
        filt = StageMemory("filter", weights, kv_gb(shape, j.batch_size, seq, dtype_bytes),
                           prefill_gb(shape, j.batch_size * seq, dtype_bytes), 0.0, logits(j.batch_size))
    else:  # reference judge / no process filter: no model is loaded
        filt = StageMemory("filter", 0.0, 0.0, 0.0, 0.0, 0.0)
    per_token_layer = (18 * shape.hidden + 8 * shape.intermediate) * dtype_bytes / 2
    if t.share_prompt:  # states once per group of G actions
        states = max(1, t.per_device_batch_size // t.num_generations)
        actions = t.per_device_batch_size * t.max_completion_length
        # train.state_gradient false: a state keeps only its keys and values (no autograd)
        state_kv = states * prompt * shape.layers * 2 * shape.kv_heads * shape.head_dim * dtype_bytes
        if t.gradient_checkpointing:  # keys, values and each layer's input; one layer's full set at a time
            kept = state_kv + (states * prompt * shape.layers * shape.hidden * dtype_bytes if t.state_gradient else 0)
            inputs = actions * shape.layers * shape.hidden * dtype_bytes
            acts = (kept + inputs + max(prompt if t.state_gradient else 0, actions) * per_token_layer) / GB
        elif t.state_gradient:
            acts = (states * prompt + actions) * shape.layers * per_token_layer / GB
        else:
            acts = (state_kv + actions * shape.layers * per_token_layer) / GB
    elif t.gradient_checkpointing:
        tokens = t.per_device_batch_size * (prompt + t.max_completion_length)
        acts = tokens * (shape.layers * shape.hidden * dtype_bytes + per_token_layer) / GB
    else:
        tokens = t.per_device_batch_size * (prompt + t.max_completion_length)
        acts = tokens * shape.layers * per_token_layer / GB
    sampled = kv_gb(shape, t.per_device_batch_size, prompt + t.max_completion_length, dtype_bytes,
                    windowed=not t.share_prompt)
    train = StageMemory("train", weights, sampled, acts, lora_gb(shape, m.lora.r),
                        logits(t.per_device_batch_size))
    return [inference("generate", g.batch_size), filt, train, inference("evaluate", recipe.eval.batch_size)]


def table_rows(stages: list[StageMemory]) -> list[tuple[str, ...]]:
    """(stage, weights, KV cache, activations, LoRA+Adam, logits, total) in GiB, for the table."""
    return [(s.stage, *(f"{v:.2f}" for v in (s.weights, s.kv_cache, s.activations, s.lora_adam, s.logits, s.total)))
            for s in stages]


TABLE_COLUMNS = ("stage", "weights", "KV cache", "activ.", "LoRA+Adam", "logits", "total GiB")
