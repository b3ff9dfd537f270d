"""The `hf` backend: transformers `generate` on a loaded policy, batched with left padding.

One call generates one assistant turn for every conversation: each chat goes through the model's own
chat template (`add_generation_prompt=True`), generation stops per row at the first action's closing
tag (`stop_strings`, checked token by token by transformers) or at the end-of-turn token, and the
decoded text is cut again at the stop string (a stop string can end inside a token).

Sampling: temperature 0 is greedy. Otherwise each row draws its tokens from its own seeded torch
generator (a logits processor that samples and masks, with greedy picking the sample), so a
trajectory's text depends on its seed, not on which other trajectories share the batch (up to the
last-bit float noise of batched matmuls).

KV caching across calls: every row of a rollout batch starts with the same instructions and
demonstrations, and a trajectory's state grows by one turn per step. Two caches keep that work from
being redone. The prefix cache holds the key/value cache of the batch's longest common token prefix
(computed once, cropped and extended across calls). The row cache keeps each conversation's own
keys/values (its prompt and the tokens it generated) from one call to the next, so at step k a row
only feeds the tokens that are new since step k-1 (its last turn's tail and the tool result) instead
of its whole history. Each row takes the longer of the two. Rows are laid out as
[padding][cached tokens][padding][new tokens]: the cache is left-padded to the longest cached part,
and the attention mask and position ids (from the mask's cumsum) skip both holes. A sliding-window
model (Gemma 3) keeps every position in its caches (`plain_cache`) and gets no hole in a row,
because its window counts cache positions, padding included: there each row feeds as many new
tokens as the longest new part, re-feeding a few cached ones, as [padding][cached][new]. Output is
the same as without caching (up to float noise). Rows a call does not ask for are dropped from the
row cache (their trajectories ended). Any other cache layout (chunked or linear attention,
unsloth-patched models) turns caching off; so does `prefix_cache=False`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
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
from swirl_lite.compat import with_cache
from swirl_lite.memory import trim


class SeededSampler:
    """Logits processor: temperature + top-p sampling with one torch.Generator per row.

    Returns scores that are -inf everywhere but the sampled token, so greedy decoding picks it.
    """

    def __init__(self, generators: Sequence[Any], temperature: float, top_p: float):
        self.temperature = temperature
        self.top_p = top_p
        self.generators = list(generators)

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


def seeded_generator(seed: int, device: Any) -> Any:
    """A torch.Generator seeded with `seed`: one row's sampling, whatever shares its batch. Each
    generated token draws once from it, so a turn generated in pieces draws what it draws in one."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


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
        common = _common_prefix([self.ids, ids])
        if self.cache is None or common == 0:
            self.cache, self.ids = plain_cache(self.model.config), []
        elif common < len(self.ids):
            self.cache.crop(common - len(self.ids))  # negative: tokens to drop (transformers 4 and 5)
            self.ids = self.ids[:common]
        if len(ids) > len(self.ids):
            import torch

            new = torch.tensor([ids[len(self.ids) :]], device=self.model.device)
            self.model(input_ids=new, use_cache=True, logits_to_keep=1, **with_cache(self.model, self.cache))
            self.ids = list(ids)
        return self.cache


def plain_cache(config: Any) -> Any:
    """An empty DynamicCache for `config` in which every layer keeps every position.

    A sliding-window model's own cache (Gemma 3: 5 of 6 layers) keeps only the last window of
    positions in those layers, so a row's keys and values could not be kept whole, repeated for a
    group or left-padded into a batch. Its sliding layers become full ones here. That is exact: the
    model builds its sliding-window mask from absolute cache positions (transformers'
    `sliding_window_overlay`: a query at i sees keys at j > i - window), so the positions a window
    drops are masked instead of missing; it costs the memory of those positions, and a batch must
    not hold padding holes inside a row (they would count against the window: see `HFLLM`).
    TypeError for any other layer kind (chunked or linear attention, static or quantized caches).
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=config)
    for i, layer in enumerate(cache.layers):
        kind = type(layer).__name__
        if kind == "DynamicSlidingWindowLayer":
            cache.layers[i] = DynamicLayer()
        elif kind != "DynamicLayer":
            raise TypeError(f"not a plain attention cache (layer {i} is {kind})")
    return cache


def has_sliding_window(config: Any) -> bool:
    """Whether some layer of `config` attends through a sliding window."""
    from transformers import DynamicCache

    try:
        layers = DynamicCache(config=config).layers
    except Exception:  # noqa: BLE001 - an exotic config: `plain_cache` refuses it too, caching goes off
        return False
    return any(getattr(layer, "is_sliding", False) for layer in layers)


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all `rows` share (compared in numpy: the row cache asks
    this for every row against every stored row, every round)."""
    import numpy as np

    n = min(len(r) for r in rows)
    first = np.asarray(rows[0][:n])
    for r in rows[1:]:
        differ = np.flatnonzero(np.asarray(r[:n]) != first[:n])
        if differ.size:
            n = int(differ[0])
    return n


def prefill_groups(lengths: Sequence[int], rows: int, overhead: int) -> list[list[int]]:
    """Which prompts to run through the model before a batched call of `rows` rows, and in which
    groups (one forward pass each): indices into `lengths`, each prompt's tokens in no cache.

    The call lays every row out to its longest new part, so it runs `rows` x max(lengths) positions.
    A group run first costs its size x its longest (+ `overhead`, a pass's fixed cost in tokens) and
    leaves its prompts one token for the call. Sorted longest first, the prompts run first are the
    k longest, cut into runs of neighbours; the k and the cuts that run the fewest positions come from
    a dynamic program over k (O(n^2), n the distinct prompts of a batch). [] where nothing saves.
    Hand-written: transformers' and TRL's generate pad a batch to its longest prompt, and vLLM's
    scheduler (which does this, and more) is another engine."""
    order, best, cut = _longest_runs(lengths, overhead)
    n = [lengths[i] for i in order]
    k = min(range(len(n) + 1), key=lambda k: best[k] + rows * (n[k] if k < len(n) else 1))
    return _runs(order, cut, k)


def padded_runs(lengths: Sequence[int], overhead: int) -> list[list[int]]:
    """`lengths` (indices into it) cut into batches, each padded to its longest, that run the fewest
    positions, each batch costing `overhead` positions more (a pass's fixed cost): the GRPO loss
    runs a state's actions this way (`training/shared_prompt.py`), so one long action does not pad
    the other seven to its length. Longest first; [[every index]] where one batch is cheapest."""
    order, _, cut = _longest_runs(lengths, overhead)
    return _runs(order, cut, len(order))


def _longest_runs(lengths: Sequence[int], overhead: int) -> tuple[list[int], list[float], list[int]]:
    """The dynamic program of `prefill_groups` and `padded_runs`: `order` sorts `lengths` longest
    first; best[k] is the fewest positions that run its k longest in runs of neighbours (each run
    padded to its first, + `overhead`), cut[k] where the last of those runs starts."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    n = [lengths[i] for i in order]
    best, cut = [0.0] + [math.inf] * len(n), [0] * (len(n) + 1)
    for k in range(1, len(n) + 1):
        for j in range(k):
            cost = best[j] + (k - j) * n[j] + overhead
            if cost < best[k]:
                best[k], cut[k] = cost, j
    return order, best, cut


def _runs(order: list[int], cut: list[int], k: int) -> list[list[int]]:
    groups = []
    while k:
        groups.append([order[i] for i in range(cut[k], k)])
        k = cut[k]
    return groups[::-1]


class RowCache:
    """Each conversation's own KV cache from the last call: (token ids, per-layer (keys, values))."""

    def __init__(self) -> None:
        self.entries: list[tuple[list[int], list[tuple[Any, Any]]]] = []

    def lookup(self, ids: list[int]) -> tuple[int, list[tuple[Any, Any]] | None]:
        """(usable cached length, layers) of the stored row sharing the longest prefix with `ids`;
        at least one token of `ids` is always left uncached."""
        best, layers = 0, None
        for stored, kv in self.entries:
            n = min(_common_prefix([stored, ids]), len(ids) - 1)
            if n > best:
                best, layers = n, kv
        return best, layers

    def replace(self, entries: list[tuple[list[int], list[tuple[Any, Any]]]]) -> None:
        self.entries = entries

    def clear(self) -> None:
        self.entries = []


def cache_layers(cache: Any) -> list[tuple[Any, Any]]:
    """Per-layer (keys, values) tensors [batch, heads, tokens, dim] of a DynamicCache."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def left_padded_cache(config: Any, rows: list[list[tuple[Any, Any]] | None], lengths: list[int], room: int,
                      consume: bool | set[int] = False) -> Any:
    """A DynamicCache of len(rows) rows, row i holding the first lengths[i] positions of its own
    (batch-1) layers right-aligned after zeros, which the attention mask hides (None: no positions).
    Each layer has `room` more positions preallocated for the tokens generation appends.

    With `consume` (True, or the ids of the lists it applies to), each source layer is dropped from
    its row's list once copied (the caller owns the lists), so building the batch never holds two
    whole copies of every row's keys/values:
    at batch 48 of ~1,000-token rows a copy is ~2 GB of the embedded model's fp32 cache."""
    cache = plain_cache(config)
    depth = max(lengths)
    model_layers = next(r for r in rows if r is not None)
    sources = list({id(r): r for r in rows if r is not None}.values())
    for layer in range(len(model_layers)):
        k0, v0 = model_layers[layer]
        keys = k0.new_zeros((len(rows), k0.shape[1], depth + room, k0.shape[3]))
        values = v0.new_zeros((len(rows), v0.shape[1], depth + room, v0.shape[3]))
        for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
            if row is not None and n:
                k, v = row[layer]
                keys[i, :, depth - n : depth] = k[0, :, :n]
                values[i, :, depth - n : depth] = v[0, :, :n]
        cache.layers[layer] = _PreallocatedLayer(keys, values, depth)
        if consume:
            for row in sources:
                if consume is True or id(row) in consume:
                    row[layer] = None
            trim(k0.device)  # else glibc may keep the freed rows resident (memory.trim)
    return cache


def split_rows(cache: Any, indices: list[Any]) -> list[list[tuple[Any, Any]]]:
    """Each row's own (batch-1) keys/values out of a batch cache: row i keeps the positions
    `indices[i]` (a LongTensor). The batch cache is emptied layer by layer as its rows are copied
    out, so the two never both hold every layer (it is of no use afterwards)."""
    rows: list[list[tuple[Any, Any]]] = [[] for _ in indices]
    for layer in cache.layers:
        k, v = layer.keys, layer.values
        for i, index in enumerate(indices):
            rows[i].append((k[i : i + 1].index_select(2, index), v[i : i + 1].index_select(2, index)))
        for attr in ("keys", "values", "buffers"):
            if hasattr(layer, attr):
                setattr(layer, attr, None)
        trim(k.device)
    return rows


def _dynamic_layer() -> type:
    from transformers.cache_utils import DynamicLayer

    return DynamicLayer


class _PreallocatedLayer(_dynamic_layer()):  # type: ignore[misc]
    """A DynamicLayer that writes new tokens into preallocated buffers.

    DynamicLayer concatenates the whole cache with each new token (torch.cat); at batch 32 with
    700-token rows that copies ~1 GB per generated token on the embedded model. Here `keys`/`values`
    are views of the first positions of the buffers; whenever a write would not fit (or something
    replaced the views), it falls back to plain concatenation.
    """

    def __init__(self, keys: Any, values: Any, length: int):
        super().__init__()
        self.buffers = (keys, values)
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]
        self.device, self.dtype, self.is_initialized = keys.device, keys.dtype, True

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        keys, values = self.buffers
        n, k = self.keys.shape[-2], key_states.shape[-2]
        if (self.keys.data_ptr() != keys.data_ptr() or n + k > keys.shape[-2]
                or self.keys.shape[:2] != key_states.shape[:2]):
            return super().update(key_states, value_states, *args, **kwargs)
        keys[:, :, n : n + k] = key_states
        values[:, :, n : n + k] = value_states
        self.keys, self.values = keys[:, :, : n + k], values[:, :, : n + k]
        return self.keys, self.values


@dataclass
class _TurnState:
    """A turn in progress (`HFLLM.advance`): its prompt ids, the tokens generated so far, and its
    sampling generator (None when greedy)."""

    ids: list[int]
    generated: list[int]
    generator: Any


class HFLLM(SeededCalls):
    """`LLM` over a transformers causal LM and its tokenizer (left padding, pad token set)."""

    name = "hf"

    MIN_PREFIX = 32  # shorter shared prefixes are not worth a cache copy
    # On CPU, a call's new tokens go through the model this many at a time (`_feed`):
    # the first call of a quickstart evaluation feeds 48 rows x ~505 tokens, whose activations
    # added ~0.7 GB at once.
    PREFILL_CHUNK = 128
    # A forward pass's fixed cost, in prompt tokens (`prefill_groups`): on 2 CPU cores one pass of
    # the embedded model costs what ~10-20 tokens of prefill do; on a GPU a pass of a 1B model is
    # launch-bound at tens of ms, a few hundred tokens' worth (estimated, not measured).
    FORWARD_COST_CPU = 32
    FORWARD_COST = 256

    def __init__(self, model: Any, tokenizer: Any, max_context: int = 4096, prefix_cache: bool = True,
                 chunk_tokens: int | None = None):
        self.model = model
        self.chunk_tokens = chunk_tokens
        self.prefix = PrefixCache(model) if prefix_cache else None
        self.rows = RowCache()
        self.sliding = prefix_cache and has_sliding_window(model.config)
        self.reused_tokens = 0  # prompt tokens that came from a cache, over all calls
        self.tokenizer = tokenizer
        self.max_context = max_context
        self.num_params = count_params(model)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.last_cached: list[int] = []
        eos = getattr(model.generation_config, "eos_token_id", None)
        eos = eos if isinstance(eos, list) else [eos]
        self.end_ids = {i for i in [*eos, tokenizer.eos_token_id, tokenizer.pad_token_id] if i is not None}

    def prompt_ids(self, conversation: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(
        self, conversations: list[list[dict]], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        seeds = self._call_seeds(params, len(conversations), seeds)
        prompts = [self.prompt_ids(c) for c in conversations]
        return generate_fitting(
            prompts, params, self.max_context,
            lambda fits: self._generate([prompts[i] for i in fits], params, [seeds[i] for i in fits]),
        )

    def advance(self, turns: list[Turn], params: SamplingParams) -> list[Completion | None]:
        """Continuous batching: every unfinished turn generates up to `chunk_tokens` more tokens in
        one batched call; a turn that reached its action's stop string, its end-of-turn token or
        its budget comes back as a Completion (and leaves the batch), the others as None. A turn
        keeps its prompt ids, the tokens so far and its sampling generator in `Turn.state`; each
        call re-enters through the row cache, so only the last token is fed again. With
        `chunk_tokens` None, or without KV caching, a call generates whole turns (lockstep)."""
        out: list[Completion | None] = [None] * len(turns)
        live = []
        for i, turn in enumerate(turns):
            if turn.state is None:
                ids = self.prompt_ids(turn.conversation)
                out[i] = beyond_context(ids, params, self.max_context)
                if out[i] is not None:
                    continue
                gen = seeded_generator(turn.seed, self.model.device) if params.temperature > 0 else None
                turn.state = _TurnState(ids, [], gen)
            live.append(i)
        if not live:
            return out
        states = [turns[i].state for i in live]
        left = max(params.max_new_tokens - len(st.generated) for st in states)
        # A lone turn makes nobody wait (the rollout fills every free slot before each round);
        # without caches (unsloth, an unusual layout) each round would re-prefill every row.
        chunk = self.chunk_tokens if self.prefix is not None else None
        piece = left if len(live) == 1 else min(chunk or left, left)
        prompts = [st.ids + st.generated for st in states]
        if len(live) > 1:
            self._prefill(prompts)
        new = self._decode(prompts, params, piece, [st.generator for st in states])
        for i, st, ids in zip(live, states, new, strict=True):
            out[i] = self._extend(st, ids, params)
        return out

    def _extend(self, st: _TurnState, ids: list[int], params: SamplingParams) -> Completion | None:
        """Append one call's tokens to a turn; its Completion when that finished it, else None."""
        end = self._turn_end(ids)
        room = params.max_new_tokens - len(st.generated)
        closed = end < len(ids) and end < room  # an end-of-turn token inside the budget
        st.generated += ids[: min(end, room)]
        done = self._completion(len(st.ids), st.generated + ids[end : end + 1] if closed else st.generated, params)
        return done if done.finish_reason == "stop" or len(st.generated) >= params.max_new_tokens else None

    def _generate(self, prompts: list[list[int]], params: SamplingParams, seeds: Sequence[int]) -> list[Completion]:
        generators = ([seeded_generator(s, self.model.device) for s in seeds] if params.temperature > 0
                      else [None] * len(prompts))
        new = self._decode(prompts, params, params.max_new_tokens, generators)
        return [self._completion(len(p), ids, params) for p, ids in zip(prompts, new, strict=True)]

    def _decode(self, prompts: list[list[int]], params: SamplingParams, max_new_tokens: int,
                generators: Sequence[Any]) -> list[list[int]]:
        """One batched `generate` of up to `max_new_tokens` per row; each row's new token ids
        (padding after a row stopped)."""
        import torch

        pad = self.tokenizer.pad_token_id
        cached, kv = self._cached_prefixes(prompts, max_new_tokens, consume=True)
        # The batch cache holds what this call uses of the stored rows; `_keep_rows` stores new ones
        # after it. Keeping the old ones until then would hold a third copy of every row's KV.
        self.rows.clear()
        trim(self.model.device)  # the stored rows, copied into the batch cache, are free
        self.last_cached = cached  # for tests and benchmarks: tokens per row that came from a cache
        self.reused_tokens += sum(cached)
        depth, width, input_ids, mask = self._layout(prompts, cached)
        device = self.model.device
        config = copy.deepcopy(self.model.generation_config)
        # Sampling is ours (SeededSampler); transformers only ever picks the top token.
        config.update(
            do_sample=False, temperature=None, top_p=None, top_k=None, max_new_tokens=max_new_tokens,
            pad_token_id=pad, stop_strings=list(params.stop) or None, num_beams=1,
        )
        if kv is not None and device.type == "cpu" and width - 1 > self.PREFILL_CHUNK:
            self._feed(kv, input_ids, mask, depth + width - 1, self.PREFILL_CHUNK)
        processors = []
        if params.temperature > 0:
            from transformers import LogitsProcessorList

            processors = LogitsProcessorList([SeededSampler(generators, params.temperature, params.top_p)])
        extra = with_cache(self.model, kv)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=mask.to(device), generation_config=config,
                logits_processor=processors or None, tokenizer=self.tokenizer, **extra,
            )
        new = out[:, depth + width :].tolist()
        if kv is not None:
            self._keep_rows(kv, prompts, cached, depth, width, new)
        del kv, out
        trim(device)  # the batch cache and the call's activations are free now
        return new

    def _feed(self, kv: Any, input_ids: Any, mask: Any, stop: int, chunk: int | None = None) -> None:
        """Feed a laid-out batch's columns from the cache's end up to `stop` into `kv`, `chunk` at a
        time (None: at once), positions counted from the mask so no padding takes one. After it
        `generate` feeds only what is left (it starts where the cache ends); transformers' own
        `prefill_chunk_size` re-feeds a cache's positions in 5.17."""
        import torch

        device = self.model.device
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        step = chunk or stop
        with torch.inference_mode():
            for start in range(kv.get_seq_length(), stop, step):
                end = min(start + step, stop)
                self.model(input_ids=input_ids[:, start:end].to(device), attention_mask=mask[:, :end].to(device),
                           position_ids=positions[:, start:end].to(device), use_cache=True, logits_to_keep=1,
                           **with_cache(self.model, kv))

    def _prefill(self, prompts: list[list[int]]) -> None:
        """Before a batched call: prompts with many tokens in no cache (a trajectory joining the
        batch: its demonstrations and question, ~400 tokens beside the others' ~20-token tool
        results) run through the model first, in groups of similar length (identical prompts once: a
        question's samples), and keep their caches in the row cache. The call pads every row to
        its longest new part, so without this one joining row makes every row of the batch run
        its whole prompt. `prefill_groups` picks the groups, or none where they save nothing."""
        if self.prefix is None:
            return
        sub = [list(p) for p in dict.fromkeys(tuple(p[:-1]) for p in prompts)]
        shared, _, cached = self._cache_sources(sub)
        floor = shared if shared >= self.MIN_PREFIX else 0
        new = [len(p) - c for p, c in zip(sub, cached, strict=True)]
        sub, new = [p for p, n in zip(sub, new, strict=True) if n > 1], [n for n in new if n > 1]
        device = self.model.device
        overhead = self.FORWARD_COST_CPU if device.type == "cpu" else self.FORWARD_COST
        chunk = self.PREFILL_CHUNK if device.type == "cpu" else None
        for group in prefill_groups(new, len(prompts), overhead):
            part = [sub[i] for i in group]
            # A continuing row's own stored cache (a prefix of its prompt) moves into the group's,
            # replaced below by the longer one, so no row is held twice; a stored row that only
            # shares a prefix (a demonstration two questions share) stays, it is another's.
            own = {id(layers) for ids, layers in self.rows.entries
                   if any(len(ids) < len(p) and p[: len(ids)] == ids for p in part)}
            cached, kv = self._cached_prefixes(part, 0, clear_on_miss=False, consume=own, most_shared=floor)
            if own:
                self.rows.replace([(ids, layers) for ids, layers in self.rows.entries if layers[0] is not None])
            if kv is None:  # nothing cached to build on (no shared instructions): the call feeds them
                return
            depth, width, ids, mask = self._layout(part, cached)
            self._feed(kv, ids, mask, depth + width, chunk)  # the cache holds the first `depth` columns
            spans = [self._row_index(depth, c, depth + width - (len(p) - c), depth + width)
                     for p, c in zip(part, cached, strict=True)]
            self.rows.entries += list(zip(part, split_rows(kv, spans), strict=True))

    def _layout(self, prompts: list[list[int]], cached: list[int]) -> tuple[int, int, Any, Any]:
        """(depth, width, input ids, attention mask) of a batch laid out as [padding][cached
        tokens][padding][new tokens]: `depth` the longest cached part, `width` the longest new one."""
        import torch

        pad = self.tokenizer.pad_token_id
        suffixes = [p[c:] for p, c in zip(prompts, cached, strict=True)]
        depth, width = max(cached), max(len(s) for s in suffixes)
        input_ids = torch.tensor([
            [pad] * (depth - c) + p[:c] + [pad] * (width - len(s)) + s
            for p, c, s in zip(prompts, cached, suffixes, strict=True)
        ])
        mask = torch.tensor([
            [0] * (depth - c) + [1] * c + [0] * (width - len(s)) + [1] * len(s) for c, s in zip(cached, suffixes, strict=True)
        ])
        return depth, width, input_ids, mask

    def _row_index(self, depth: int, cached: int, start: int, stop: int) -> Any:
        """The batch-cache positions of one row without its padding: its `cached` positions ending at
        `depth`, then positions `start` to `stop` (its new tokens)."""
        import torch

        return torch.tensor([*range(depth - cached, depth), *range(start, stop)], device=self.model.device)

    def _cache_sources(self, prompts: list[list[int]], most_shared: int | None = None,
                       ) -> tuple[int, list[tuple[int, Any]], list[int]]:
        """(the prefix all rows share, each row's best stored row as `RowCache.lookup` gives it, and
        how many leading tokens of each row a cache holds: its stored row's where longer, else the
        shared prefix, when that is worth a copy), at most `most_shared` from the prefix cache."""
        # at least one new token per row: generation needs a fresh last position
        shared = min(_common_prefix(prompts), min(len(p) for p in prompts) - 1,
                     math.inf if most_shared is None else most_shared)
        own = [self.rows.lookup(p) for p in prompts]
        use_shared = shared >= self.MIN_PREFIX
        cached = [n if n > shared and n >= self.MIN_PREFIX else shared if use_shared else 0 for n, _ in own]
        return shared, own, cached

    def _cached_prefixes(self, prompts: list[list[int]], max_new_tokens: int, clear_on_miss: bool = True,
                         consume: bool | set[int] = False, most_shared: int | None = None) -> tuple[list[int], Any]:
        """Per row, how many leading tokens come from a cache, and the batch KV cache holding them
        left-padded to the longest ((all 0s, None) when caching is off or saves nothing). With
        `consume` the stored rows (True: all; else those whose layer lists have these ids) are emptied
        as they are copied in (the caller drops them next).
        `most_shared` caps the prefix taken from the prefix cache (whose tokens beyond what it
        holds would run through the model again, instead of coming from a row's own cache)."""
        none = [0] * len(prompts), None
        if self.prefix is None:
            return none
        import torch

        shared, own, cached = self._cache_sources(prompts, most_shared)
        from_prefix = [shared >= self.MIN_PREFIX and c == shared for c in cached]
        width = max(len(p) - c for p, c in zip(prompts, cached, strict=True))
        if self.sliding:
            # No padding hole inside a row: the window counts cache positions, holes included. Every
            # row feeds `width` new tokens (a row with a shorter suffix re-feeds cached ones).
            cached = [max(min(c, len(p) - width), 0) for p, c in zip(prompts, cached, strict=True)]
        if max(cached) == 0:
            if clear_on_miss:
                self.rows.clear()
            return none
        try:
            with torch.inference_mode():
                prefix = (cache_layers(self.prefix.get(prompts[0][:shared]))
                          if any(f and c for f, c in zip(from_prefix, cached, strict=True)) else None)
                sources = [None if c == 0 else prefix if f else layers
                           for c, f, (_, layers) in zip(cached, from_prefix, own, strict=True)]
                kv = left_padded_cache(self.model.config, sources, cached, width + max_new_tokens, consume=consume)
        except (TypeError, ValueError, NotImplementedError, AttributeError) as exc:  # unusual cache layouts: plain path
            from swirl_lite.console import console

            console.print(f"[dim]hf backend: KV caching off for this model ({exc})[/]")
            self.prefix = None
            self.rows.clear()
            return none
        return cached, kv

    def _keep_rows(self, kv: Any, prompts: list[list[int]], cached: list[int], depth: int, width: int,
                   new: list[list[int]]) -> None:
        """Store each row's own keys/values (prompt and the generated tokens fed back) for the next call."""
        fed = max(len(new[0]) - 1, 0)  # the last sampled token was never fed through the model
        ids, spans = [], []
        for i, (p, c) in enumerate(zip(prompts, cached, strict=True)):
            keep = min(self._turn_end(new[i]), fed)
            ids.append(p + new[i][:keep])
            spans.append(self._row_index(depth, c, depth + width - (len(p) - c), depth + width + keep))
        self.rows.replace(list(zip(ids, split_rows(kv, spans), strict=True)))

    def _turn_end(self, ids: list[int]) -> int:
        """Index of the first end-of-turn or padding token among generated `ids` (their length if none)."""
        return next((k for k, t in enumerate(ids) if t in self.end_ids), len(ids))

    def _completion(self, prompt_len: int, ids: list[int], params: SamplingParams) -> Completion:
        end = self._turn_end(ids)
        text = self.tokenizer.decode(ids[:end], skip_special_tokens=True)
        text, hit = cut_at_stop(text, params.stop)
        if hit:
            return Completion(text, prompt_len, end, "stop")
        if end < len(ids):  # the model closed its turn (end-of-turn token counted)
            return Completion(text, prompt_len, end + 1, "stop")
        return Completion(text, prompt_len, end, "length")
