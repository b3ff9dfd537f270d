"""The `hf` backend: transformers `generate` on a loaded policy, batched with left padding.

One call generates one assistant turn for every conversation: each chat goes through the model's own
chat template (`add_generation_prompt=True`), generation stops per row at the first action's closing
tag (`stop_strings`, checked token by token by transformers) or at the end-of-turn token, and the
decoded text is cut again at the stop string (a stop string can end inside a token).

Sampling: temperature 0 is greedy. Otherwise each row draws its tokens from its own seeded torch
generator (a logits processor that samples and masks, with greedy picking the sample), so a
trajectory's text depends on its seed, not on which other trajectories share the batch (up to the
last-bit float noise of batched matmuls).

Prefix caching: every row of a rollout batch starts with the same instructions and demonstrations,
and a single trajectory's state grows by one turn per step. The key/value cache of the batch's
longest common token prefix is computed once (kept, cropped and extended across calls) and shared
by all rows: rows are laid out as [shared prefix][padding][own suffix], and the attention mask and
position ids (from the mask's cumsum) skip the padding hole. Output is the same as without it.
Only for plain full-attention caches (not sliding-window or unsloth-patched models).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from swirl_lite.backends import Completion, SamplingParams, cut_at_stop, generate_fitting, seed_for


class SeededSampler:
    """Logits processor: temperature + top-p sampling with one torch.Generator per row.

    Returns scores that are -inf everywhere but the sampled token, so greedy decoding picks it.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float, device: Any):
        import torch

        self.temperature = temperature
        self.top_p = top_p
        self.generators = []
        for seed in seeds:
            gen = torch.Generator(device=device)
            gen.manual_seed(int(seed))
            self.generators.append(gen)

    def __call__(self, input_ids, scores):
        import torch

        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_p, order = torch.sort(probs, dim=-1, descending=True)
            # drop a token when the tokens before it already cover top_p (the top one always stays)
            drop = (torch.cumsum(sorted_p, dim=-1) - sorted_p) >= self.top_p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
        picks = [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)]
        chosen = torch.cat(picks).view(-1, 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, chosen, 0.0)


def count_params(model: Any) -> int:
    """Parameters of the model (4-bit packed weights hold two per byte)."""
    import torch

    total = 0
    for p in model.parameters():
        total += p.numel() * (2 if p.dtype == torch.uint8 else 1)
    return total


class PrefixCache:
    """The KV cache of one token sequence, cropped and extended to the next requested prefix."""

    def __init__(self, model: Any):
        self.model = model
        self.ids: list[int] = []
        self.cache: Any = None

    def get(self, ids: list[int]) -> Any:
        """A batch-1 DynamicCache covering exactly `ids` (owned by this object: copy before use)."""
        from transformers import DynamicCache

        common = _common_prefix([self.ids, ids])
        if self.cache is None or common == 0:
            self.cache, self.ids = DynamicCache(config=self.model.config), []
            if any(type(layer).__name__ != "DynamicLayer" for layer in self.cache.layers):
                raise TypeError("not a plain full-attention cache")
        elif common < len(self.ids):
            self.cache.crop(common - len(self.ids))  # negative: tokens to drop (transformers 4 and 5)
            self.ids = self.ids[:common]
        if len(ids) > len(self.ids):
            import torch

            new = torch.tensor([ids[len(self.ids) :]], device=self.model.device)
            self.model(input_ids=new, cache=self.cache, use_cache=True, logits_to_keep=1)
            self.ids = list(ids)
        return self.cache


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    n = min(len(r) for r in rows)
    first = rows[0]
    for k in range(n):
        if any(r[k] != first[k] for r in rows[1:]):
            return k
    return n


class HFLLM:
    """`LLM` over a transformers causal LM and its tokenizer (left padding, pad token set)."""

    name = "hf"

    MIN_PREFIX = 32  # shorter shared prefixes are not worth a cache copy

    def __init__(self, model: Any, tokenizer: Any, max_context: int = 4096, prefix_cache: bool = True):
        self.model = model
        self.prefix = PrefixCache(model) if prefix_cache else None
        self.tokenizer = tokenizer
        self.max_context = max_context
        self.num_params = count_params(model)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._calls = 0
        eos = getattr(model.generation_config, "eos_token_id", None)
        eos = eos if isinstance(eos, list) else [eos]
        self.end_ids = {i for i in [*eos, tokenizer.eos_token_id, tokenizer.pad_token_id] if i is not None}

    def prompt_ids(self, conversation: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(
        self, conversations: list[list[dict]], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        self._calls += 1
        if seeds is None:
            seeds = [seed_for(params.seed, self._calls, i) for i in range(len(conversations))]
        prompts = [self.prompt_ids(c) for c in conversations]
        return generate_fitting(
            prompts, params, self.max_context,
            lambda fits: self._generate([prompts[i] for i in fits], params, [seeds[i] for i in fits]),
        )

    def _generate(self, prompts: list[list[int]], params: SamplingParams, seeds: Sequence[int]) -> list[Completion]:
        import torch

        pad = self.tokenizer.pad_token_id
        shared, cache = self._shared_prefix(prompts)
        suffixes = [p[shared:] for p in prompts]
        width = max(len(s) for s in suffixes)
        head = prompts[0][:shared]
        input_ids = torch.tensor([head + [pad] * (width - len(s)) + s for s in suffixes])
        mask = torch.tensor([[1] * shared + [0] * (width - len(s)) + [1] * len(s) for s in suffixes])
        device = self.model.device
        config = copy.deepcopy(self.model.generation_config)
        # Sampling is ours (SeededSampler); transformers only ever picks the top token.
        config.update(
            do_sample=False, temperature=None, top_p=None, top_k=None, max_new_tokens=params.max_new_tokens,
            pad_token_id=pad, stop_strings=list(params.stop) or None, num_beams=1,
        )
        processors = []
        if params.temperature > 0:
            from transformers import LogitsProcessorList

            processors = LogitsProcessorList([SeededSampler(seeds, params.temperature, params.top_p, device)])
        extra = {"cache": cache} if cache is not None else {}
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=mask.to(device), generation_config=config,
                logits_processor=processors or None, tokenizer=self.tokenizer, **extra,
            )
        new = out[:, shared + width :].tolist()
        return [self._completion(len(p), ids, params) for p, ids in zip(prompts, new, strict=True)]

    def _shared_prefix(self, prompts: list[list[int]]) -> tuple[int, Any]:
        """(length, batch-expanded KV cache) of the rows' common prefix; (0, None) when not used."""
        if self.prefix is None:
            return 0, None
        shared = min(_common_prefix(prompts), min(len(p) for p in prompts) - 1)  # >= 1 new token per row
        if shared < self.MIN_PREFIX:
            return 0, None
        import torch

        try:
            with torch.inference_mode():
                cache = copy.deepcopy(self.prefix.get(prompts[0][:shared]))
        except (TypeError, ValueError, NotImplementedError, AttributeError) as exc:  # unusual cache layouts: plain path
            from swirl_lite.console import console

            console.print(f"[dim]hf backend: prefix caching off for this model ({exc})[/]")
            self.prefix = None
            return 0, None
        if len(prompts) > 1:
            cache.batch_repeat_interleave(len(prompts))
        return shared, cache

    def _completion(self, prompt_len: int, ids: list[int], params: SamplingParams) -> Completion:
        end = next((k for k, t in enumerate(ids) if t in self.end_ids), len(ids))
        text = self.tokenizer.decode(ids[:end], skip_special_tokens=True)
        text, hit = cut_at_stop(text, params.stop)
        if hit:
            return Completion(text, prompt_len, end, "stop")
        if end < len(ids):  # the model closed its turn (end-of-turn token counted)
            return Completion(text, prompt_len, end + 1, "stop")
        return Completion(text, prompt_len, end, "length")
