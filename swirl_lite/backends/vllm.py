"""The `vllm` backend: vLLM's offline engine, with automatic prefix caching (GPU only).

Prefix caching suits the rollout exactly: every step re-sends a trajectory's whole chat, and all K
samples of a question share the prompt, so only the new turn is computed. Chats go through the
model's chat template here (so token counts and the context check match the `hf` backend) and are
passed to vLLM as token ids. Each request carries its own seed, so a trajectory is reproducible
whatever shares its batch. `include_stop_str_in_output` keeps the closing tag in the turn.

vLLM is an optional extra (`pip install 'swirl-lite[vllm]'`); without it, or without CUDA, building
this backend fails with a one-line error that says what to do.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from swirl_lite.backends import Completion, SamplingParams, cut_at_stop, generate_fitting, seed_for

LORA_RANKS = (8, 16, 32, 64, 128, 256)


def check_available() -> None:
    """Raise a one-line RuntimeError when vLLM or CUDA is missing."""
    if importlib.util.find_spec("vllm") is None:
        raise RuntimeError(
            "generate.backend 'vllm' needs vLLM: pip install 'swirl-lite[vllm]' (GPU only); "
            "or use generate.backend 'hf'"
        )
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("generate.backend 'vllm' needs a CUDA GPU and none was found; use generate.backend 'hf'")


class VLLMLLM:
    name = "vllm"

    def __init__(self, engine: Any, max_context: int, lora_path: str | None = None, num_params: int | None = None):
        self.engine = engine
        self.tokenizer = engine.get_tokenizer()
        self.max_context = max_context
        self.num_params = num_params
        self.lora = None
        if lora_path:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("adapter", 1, lora_path)
        self._calls = 0

    @classmethod
    def from_config(cls, cfg: Any, gpu_memory_utilization: float = 0.85) -> VLLMLLM:
        """From a `config.ModelConfig`: the same model (and adapter) the `hf` backend would load."""
        check_available()
        from vllm import LLM

        from swirl_lite.models import resolve_model_path

        path = resolve_model_path(cfg.name, cfg.gguf_file)
        kwargs: dict[str, Any] = {
            "model": path,
            "enable_prefix_caching": True,
            "max_model_len": cfg.max_seq_length,
            "dtype": cfg.dtype,
            "trust_remote_code": cfg.trust_remote_code,
            "gpu_memory_utilization": gpu_memory_utilization,
        }
        if cfg.load_in_4bit:
            kwargs["quantization"] = "bitsandbytes"
        if cfg.adapter:
            kwargs["enable_lora"] = True
            kwargs["max_lora_rank"] = next((r for r in LORA_RANKS if r >= cfg.lora.r), LORA_RANKS[-1])
        engine = LLM(**kwargs)
        return cls(engine, cfg.max_seq_length, cfg.adapter, _num_params(path))

    def close(self) -> None:
        """Shut the engine down and free its GPU memory (the pipeline trains in the same process
        afterwards). Idempotent; the stage that built the engine calls it when it ends."""
        engine = self.__dict__.pop("engine", None)
        if engine is None:
            return
        core = getattr(engine, "llm_engine", None)
        for owner in (core, getattr(core, "engine_core", None)):  # vLLM V0 / V1 engine layouts
            shutdown = getattr(owner, "shutdown", None)
            if callable(shutdown):
                shutdown()
                break
        owner = shutdown = engine = core = None  # no reference left for release() to miss
        try:
            from vllm.distributed.parallel_state import (
                destroy_distributed_environment,
                destroy_model_parallel,
            )

            destroy_model_parallel()
            destroy_distributed_environment()
        except ImportError:
            pass
        from swirl_lite.memory import release

        release()

    def generate(
        self, conversations: list[list[dict]], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        from vllm import SamplingParams as VSampling

        self._calls += 1
        if seeds is None:
            seeds = [seed_for(params.seed, self._calls, i) for i in range(len(conversations))]
        prompts = [self._ids(c) for c in conversations]

        def run(todo: list[int]) -> list[Completion]:
            sampling = [
                VSampling(
                    temperature=params.temperature, top_p=params.top_p if params.temperature > 0 else 1.0,
                    max_tokens=params.max_new_tokens, stop=list(params.stop), include_stop_str_in_output=True,
                    seed=int(seeds[i] % 2**63),
                )
                for i in todo
            ]
            outputs = self.engine.generate(
                [{"prompt_token_ids": prompts[i]} for i in todo], sampling, use_tqdm=False, lora_request=self.lora
            )
            done = []
            for i, out in zip(todo, outputs, strict=True):
                gen = out.outputs[0]
                text, _ = cut_at_stop(gen.text, params.stop)
                reason = "length" if gen.finish_reason == "length" else "stop"
                done.append(Completion(text, len(prompts[i]), len(gen.token_ids), reason))
            return done

        return generate_fitting(prompts, params, self.max_context, run)

    def _ids(self, conversation: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def _num_params(path: str) -> int | None:
    """Parameter count from the model config without loading weights (for demonstrations)."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(path)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # unknown architecture to transformers: fall back to the default
        return None
