"""Shared fixtures: everything offline, tiny models built here from a config, nothing downloaded."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    skip_cpu_only = pytest.mark.skip(reason="asserts a machine without CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "cpu_only" in item.keywords and has_cuda:
            item.add_marker(skip_cpu_only)


@pytest.fixture(scope="session")
def embedded_path() -> str:
    """The embedded SmolLM2-135M-Instruct as a transformers folder (converted once, then cached)."""
    from swirl_lite.models import resolve_model_path

    return resolve_model_path("embedded")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_path) -> str:
    """A 2-layer, 64-wide Llama with the embedded model's real tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_gemma_dir(tmp_path_factory, embedded_path) -> str:
    """A 2-layer Gemma 3 (one sliding-window layer, window 16, one full-attention layer) with the
    embedded BPE plus Gemma's turn tokens and a chat template that, like Gemma's, refuses a system
    role and turns that do not alternate."""
    import torch

    from swirl_lite.architectures import build_model

    return str(build_model("gemma3", tmp_path_factory.mktemp("tiny-gemma3"), "tiny", dtype=torch.float32))
