"""Random-weight models of the architectures swirl-lite targets, built from a config offline.

The mission's models are Gemma 3 (5 of every 6 layers attend through a sliding window; its chat
template has no system role and demands strict user/model alternation) and Llama 3.2 (full
attention everywhere). No hub is reachable in the tests, the CPU benches or on the GPU check's
machine, so these build a model of the same architecture from its config, with a tokenizer made of
the embedded SmolLM2 BPE plus the family's special tokens and chat template. Random weights make
such a model good for exactness, speed and memory, never for quality.

Sizes: `tiny` (the test suite: 2 layers, 64 wide, a 16-token window so that short states cross it),
`bench` (the CPU benches: Gemma 3 270M's and SmolLM2 135M's layer shapes on the 49k BPE, so
attention and the caches cost what they cost at that size) and `1b` (the published 1B shapes with
their real vocabulary sizes: the GPU check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Gemma's rules, as its own template enforces them: no system turn (instructions go in the first
# user turn), user first, then strict alternation; the assistant is called "model".
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + m['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# family: (real vocabulary size, bos, eos = end of turn, pad, other special tokens, template)
FAMILIES = {
    "gemma-3-1b": (262144, "<bos>", "<end_of_turn>", "<pad>", ["<start_of_turn>"], GEMMA_TEMPLATE),
    "llama-3.2-1b": (128256, "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>",
                     ["<|start_header_id|>", "<|end_header_id|>"], LLAMA_TEMPLATE),
}
ARCHES = {"gemma3": "gemma-3-1b", "llama": "llama-3.2-1b"}  # the benches' `--arch` names
SIZES = ("tiny", "bench", "1b")

_SHAPES: dict[str, dict[str, dict[str, Any]]] = {
    "gemma-3-1b": {
        "1b": dict(hidden_size=1152, intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4,
                   num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256, sliding_window=512,
                   max_position_embeddings=32768),
        # Gemma 3 270M's layers (18 of them, window 512)
        "bench": dict(hidden_size=640, intermediate_size=2048, num_hidden_layers=18, num_attention_heads=4,
                      num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256, sliding_window=512,
                      max_position_embeddings=32768),
        "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                     num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32, sliding_window=16,
                     layer_types=["sliding_attention", "full_attention"], max_position_embeddings=4096),
    },
    "llama-3.2-1b": {
        "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                   num_key_value_heads=8, head_dim=64, max_position_embeddings=131072),
        # SmolLM2 135M's layers (the embedded model)
        "bench": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                      num_key_value_heads=3, head_dim=64, max_position_embeddings=8192),
        "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=16, max_position_embeddings=4096),
    },
}


def family_of(name: str) -> str:
    """A family key of FAMILIES from itself or a benches' `--arch` name."""
    family = ARCHES.get(name, name)
    if family not in FAMILIES:
        raise ValueError(f"unknown architecture {name!r}: use one of {', '.join([*ARCHES, *FAMILIES])}")
    return family


def build_tokenizer(family: str, source: str | Path | None = None):
    """A BPE tokenizer (`source`: a folder or hub id; default the embedded model's, offline) with
    `family`'s special tokens and chat rules."""
    from transformers import AutoTokenizer

    from swirl_lite.models import resolve_model_path

    _, bos, eos, pad, extra, template = FAMILIES[family_of(family)]
    tok = AutoTokenizer.from_pretrained(str(source) if source else resolve_model_path("embedded"))
    tok.add_tokens([bos, eos, pad, *extra], special_tokens=True)
    tok.bos_token, tok.eos_token, tok.pad_token = bos, eos, pad
    tok.chat_template = template
    return tok


def family_config(family: str, vocab_size: int, size: str = "1b"):
    """The transformers config of `family` at `size` (see the module docstring)."""
    family = family_of(family)
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}: use one of {', '.join(SIZES)}")
    shape = _SHAPES[family][size]
    if family.startswith("gemma"):
        from transformers import Gemma3TextConfig

        return Gemma3TextConfig(vocab_size=vocab_size, tie_word_embeddings=True, **shape)
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, tie_word_embeddings=True, **shape)


def build_model(family: str, folder: str | Path, size: str = "1b", dtype: Any = None,
                tokenizer: str | Path | None = None) -> Path:
    """A random-weight model of `family` at `size` with its tokenizer, saved to `folder` (seeded:
    the same weights every time). `1b` keeps the family's real vocabulary size; the smaller sizes
    use the tokenizer's (49k), so the embedding does not dwarf the layers. `tokenizer`: see
    `build_tokenizer`."""
    import torch
    from transformers import AutoModelForCausalLM

    family = family_of(family)
    tok = build_tokenizer(family, tokenizer)
    config = family_config(family, FAMILIES[family][0] if size == "1b" else len(tok), size)
    config.bos_token_id, config.eos_token_id, config.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    if dtype is None:
        dtype = torch.bfloat16 if cuda else torch.float32
    with torch.device("cuda" if cuda else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.update(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                   pad_token_id=tok.pad_token_id)
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    return folder
