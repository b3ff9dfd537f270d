"""Run each distinct state once per GRPO step, not once per sampled action.

A GRPO batch holds G actions for each state, so TRL 1.16 feeds the same state G times: G prefills to
sample the actions and G forward/backward passes over state + action to score them. SWiRL's states
are long (the question, the demonstrations, every earlier step and tool result: ~600 tokens here)
and its actions short (~25 tokens), so nearly all of that work is repeated. Here each distinct state
runs once, its keys and values are repeated for its G actions, and only the actions run per row.
Sampling then makes one `generate` call for every state's actions, the rows left-padded to the
longest state, as TRL's own call does (and drawing the same random numbers).

The result is exact, not an approximation: the repeated keys and values are views of one tensor, so
the backward pass sums the G actions' gradients into the state's single forward, which is what the
G separate passes compute one by one. `tests/test_train.py` checks log-probabilities, entropies and
LoRA gradients against TRL's own path, and sampled actions against plain `generate`.

Sliding-window models (Gemma 3) share states too: the state's cache keeps every position
(`backends.hf.plain_cache`) and the model's own sliding-window mask, built from absolute positions,
hides what the window drops; `tests/test_gemma3.py` checks the same numbers with states longer than
the window and actions crossing it.

Written here because neither TRL nor transformers shares a prompt across a group (TRL's vLLM mode
shares the prefill, but vLLM is not on the CPU or Colab path); used only for decoders whose cache is
transformers' DynamicCache of attention layers (full or sliding-window), in one process: anything
else uses TRL's path. transformers' gradient checkpointing drops caches, so under
`train.gradient_checkpointing` each layer's forward is checkpointed here instead, keeping the cache.
"""

from __future__ import annotations

import contextlib
from typing import Any

from swirl_lite.compat import with_cache


def prompt_groups(ids, mask) -> list[list[int]]:
    """Rows with the same prompt (same tokens under the same mask), in first-seen order."""
    seen: dict[tuple, list[int]] = {}
    for i in range(ids.size(0)):
        key = tuple(ids[i][mask[i].bool()].tolist())
        seen.setdefault(key, []).append(i)
    return list(seen.values())


def shared_groups(ids, mask) -> list[list[int]] | None:
    """`prompt_groups`, or None when no two rows share a prompt (nothing to gain)."""
    groups = prompt_groups(ids, mask)
    return groups if len(groups) < ids.size(0) else None


def supported(model) -> bool:
    """A decoder whose cache is transformers' DynamicCache of attention layers (full or sliding)."""
    from swirl_lite.backends.hf import plain_cache

    config = getattr(model, "config", None)
    if config is None:
        return False
    try:
        plain_cache(config)
    except Exception:  # noqa: BLE001 - sliding-window layers or an exotic config: use TRL's path
        return False
    return True


def has_dropout(model) -> bool:
    """Whether a training-mode pass of `model` draws dropout masks (`lora.dropout`, or a model
    config's dropout above 0): two passes of one state then differ, so the loss must not read the
    state sampling ran (`SampledStates`) but draw its own, as TRL's loss does."""
    import torch

    if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules()):
        return True
    config = getattr(model, "config", None)
    settings = config.to_dict() if hasattr(config, "to_dict") else {}
    return any(k.endswith("dropout") and isinstance(v, float) and v > 0 for k, v in settings.items())


class SampledStates:
    """Each state's one-row cache as GRPO's sampling computed it (`generate`), kept for the loss of
    the same optimizer step, which reads it instead of running the state again wherever the state
    needs no gradient (a settled group, `train.state_gradient` false). Nothing writes into a kept
    cache: sampling copies it into its batch cache, the loss repeats it into new ones (`_repeated`).

    The weights must not have changed in between: an entry is read only at the optimizer step it
    was written at (`start`), and only by the loss (not by the reference model's pass, whose weights
    differ: adapter off). Sampling runs each state alone, without autograd, as the loss's
    no-autograd pass does, so on the CPU's float32 the values are the same bit for bit
    (`tests/test_train.py`); where the two pass differ in precision (GPU autocast) they agree to it.
    """

    def __init__(self) -> None:
        self.step: int | None = None
        self.entries: dict[tuple[int, ...], Any] = {}

    def start(self, step: int) -> None:
        """A new generation batch at optimizer step `step`: forget the previous states."""
        self.step, self.entries = step, {}

    def put(self, prefix, cache) -> None:
        self.entries[tuple(prefix.tolist())] = cache

    def get(self, prefix, step: int) -> Any:
        return self.entries.get(tuple(prefix.tolist())) if step == self.step else None


def _prefix_cache(model, prefix, checkpointed: bool = False):
    """The keys and values of `prefix` (1-D ids) in a one-row cache (`_repeated` makes it several
    rows); None for an empty prefix.

    `checkpointed` (the loss, under `train.gradient_checkpointing`): the prefix's activations are not
    kept for the backward pass but recomputed there, one decoder layer at a time (torch's
    non-reentrant checkpoint around each layer, `_checkpoint_each_layer`); only each layer's input
    and its keys and values stay. A state is most of a GRPO row, so this is most of the activation
    memory, for one more forward pass of each state. The gradients are the same. (Checkpointing the
    state's forward whole recomputed all its layers at once in the backward pass: the quickstart's
    training peaked there.)
    """
    import torch

    from swirl_lite.backends.hf import plain_cache

    if prefix.numel() == 0:
        return None
    cache = plain_cache(model.config)
    if checkpointed and torch.is_grad_enabled():
        # each layer checkpointed here, transformers' own (which would drop the cache) off
        with _checkpoint_each_layer(model, cache):
            model(input_ids=prefix[None], use_cache=True, logits_to_keep=1, **with_cache(model, cache))
    else:
        model(input_ids=prefix[None], use_cache=True, logits_to_keep=1, **with_cache(model, cache))
    return cache


def _repeated(cache, repeats: int):
    """`cache` (one row) as `repeats` rows: a new cache whose layers are views of the one row, not
    copies, so the backward pass sums the rows' gradients into it. `cache` itself is unchanged by
    what a forward pass appends to the new one (each batch of actions reads the state alone)."""
    import copy

    if cache is None:
        return None
    out = copy.copy(cache)
    out.layers = []
    for layer in cache.layers:
        mine = copy.copy(layer)
        mine.keys = layer.keys.expand(repeats, *layer.keys.shape[1:])
        mine.values = layer.values.expand(repeats, *layer.values.shape[1:])
        out.layers.append(mine)
    return out


def _decode_cache(model, prefixes, owner: list[int], room: int, states: SampledStates | None = None):
    """`_prefix_cache` for sampling: each of `prefixes` runs through the model once; row i of the
    cache holds the keys and values of `prefixes[owner[i]]`, the rows left-padded to the longest,
    with `room` more positions allocated, so each sampled token is written in place. A DynamicLayer
    concatenates its whole cache with every token instead: with 8 rows of ~1,000-token states that
    copy was 60% of the time of a sampling step on the embedded model (torch profiler). The values
    are the same, so are the samples. None when every prefix is empty. `states`: where each
    prefix's own keys and values are kept for the loss."""
    from swirl_lite.backends.hf import cache_layers, left_padded_cache

    caches = [_prefix_cache(model, prefix) for prefix in prefixes]
    if states is not None:
        for prefix, cache in zip(prefixes, caches, strict=True):
            if cache is not None:
                states.put(prefix, cache)
    layers = [cache_layers(c) if c is not None else None for c in caches]
    lengths = [prefixes[g].numel() for g in owner]
    if not any(lengths):
        return None
    return left_padded_cache(model.config, [layers[g] for g in owner], lengths, room)


@contextlib.contextmanager
def _checkpoint_each_layer(model, cache, keep: bool = True):
    """Within the block, each decoder layer's forward runs under torch's non-reentrant checkpoint,
    reading and writing `cache` as usual.

    The backward pass recomputes one layer at a time, just before that layer's own backward, so only
    one layer's activations are alive at once, not the whole forward's. A layer's replay must see
    the cache as its first pass did: each run starts from a copy of the layer's cache as it was
    just before that first pass (empty for a state, the state's keys and values for its actions),
    so the replay neither attends over positions written later nor appends its own twice. The
    cache's tensors are not copied, only the layer object holding them. `keep`: the cache keeps
    what the layers wrote (a state's keys and values, which its actions read); else each layer's
    cache goes back to what it held once the layer is done, so that the actions' concatenated keys
    and values (a copy of the state's for every row) live for one layer, not until the backward
    pass."""
    import copy

    from torch.utils.checkpoint import checkpoint

    layers = [m for m in model.modules() if hasattr(getattr(m, "self_attn", None), "layer_idx")]

    def wrap(layer):
        forward, idx = layer.forward, layer.self_attn.layer_idx

        def checkpointed(hidden, **kwargs):
            before = copy.copy(cache.layers[idx])

            def run(hidden):
                cache.layers[idx] = copy.copy(before)
                # transformers' own checkpointing off also in the replay, where the trainer has
                # switched it back on: it would drop the cache and save other tensors
                on, layer.gradient_checkpointing = layer.gradient_checkpointing, False
                try:
                    return forward(hidden, **kwargs)
                finally:
                    layer.gradient_checkpointing = on

            # non-reentrant: the graph is the first pass's, so gradients reach the cache's tensors
            out = checkpoint(run, hidden, use_reentrant=False)
            if not keep:
                cache.layers[idx] = before
            return out

        return checkpointed

    # transformers' own checkpointing off for the block: transformers 5.17 decides it in the layer's
    # __call__, before the wrapper below runs (5.24 and later: in the forward the wrapper calls)
    was = [getattr(layer, "gradient_checkpointing", False) for layer in layers]
    for layer in layers:
        layer.forward = wrap(layer)
        layer.gradient_checkpointing = False
    try:
        yield
    finally:
        for layer, on in zip(layers, was, strict=True):
            del layer.forward  # the class's forward again
            layer.gradient_checkpointing = on


def logps_and_entropies(model, input_ids, attention_mask, logits_to_keep: int, compute_entropy: bool,
                        groups: list[list[int]] | None = None, checkpointed: bool = False, settled=None,
                        state_gradient: bool = True, sampled=None):
    """TRL's per-token log-probabilities (and entropies) of the last `logits_to_keep` tokens.

    The model must carry TRL's fused LM head (`fused_lm_head=True` returns log-probabilities at the
    temperature TRL set). Prompts may be left-padded; completions right-padded (mask 0). `groups`:
    the prompts' `prompt_groups`, when the caller has them already. `checkpointed`: the states' and
    the actions' activations are recomputed in the backward pass, a layer at a time, instead of kept
    (`_checkpoint_each_layer`). `settled`: a bool per row; a group whose rows are all settled (their
    loss has no gradient, see `settled_rows`) runs without autograd: the same values, no backward
    pass. If every group is settled, the result carries a zero gradient to every trainable weight.
    `state_gradient` False (`train.state_gradient`): each state runs without autograd, so the
    gradient reaches the weights through the actions' own tokens only, not through the state's keys
    and values: an approximation, which saves the state's backward pass (and, checkpointed, its
    replay). The values are the same. `sampled`: prefix ids -> that state's one-row cache from
    sampling or None (`SampledStates.get`), read for a state that runs without autograd.
    """
    import torch

    C = logits_to_keep
    prompt_ids, prompt_mask = input_ids[:, :-C], attention_mask[:, :-C]
    logps = [None] * input_ids.size(0)
    entropies = [None] * input_ids.size(0)
    groups = groups or prompt_groups(prompt_ids, prompt_mask)
    frozen = [settled is not None and bool(settled[rows].all()) for rows in groups]
    for rows, no_grad in zip(groups, frozen, strict=True):
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            outs = _state_forward(model, prompt_ids, prompt_mask, input_ids, attention_mask, C, rows, checkpointed,
                                  state_gradient, sampled)
        for row, (logp, entropy) in zip(rows, outs, strict=True):
            logps[row] = logp
            if compute_entropy:
                entropies[row] = entropy
    logps = torch.stack(logps)
    if all(frozen) and torch.is_grad_enabled():
        # Nothing to learn from this batch, but the optimizer still steps (Adam's moments move the
        # weights) and expects every trainable weight's gradient: a zero one, as the full pass gives.
        logps = logps + sum((p * 0).sum() for p in model.parameters() if p.requires_grad)
    return logps, (torch.stack(entropies) if compute_entropy else None)


def _state_forward(model, prompt_ids, prompt_mask, input_ids, attention_mask, C: int, rows: list[int],
                   checkpointed: bool, state_gradient: bool = True, sampled=None):
    """(log-probabilities, entropies) of each of `rows`' C completion tokens, `rows` sharing one
    state: the state runs once (without autograd unless `state_gradient`), then its actions.

    The actions run in batches of similar length (`backends.hf.padded_runs`), each padded to its
    own longest: TRL pads every completion to the batch's longest, and one action that rambles to
    the length cap would otherwise make the other seven run that long. Padding is masked, so each
    row's values are the ones the whole group's pass gives (up to float rounding, which depends on
    the batch's shape); past its length a row gets 0, which TRL's masks drop.
    """
    import torch
    import torch.nn.functional as F

    from swirl_lite.backends.hf import HFLLM, padded_runs

    first = rows[0]
    prompt = prompt_ids[first][prompt_mask[first].bool()]
    # The cache holds the prompt but its last token, which goes in front of the completion so
    # that its output (the first completion token's distribution) comes from the same call.
    no_grad = not state_gradient or not torch.is_grad_enabled()
    state = sampled(prompt[:-1]) if sampled is not None and no_grad else None
    if state is None:
        with contextlib.nullcontext() if state_gradient else torch.no_grad():
            state = _prefix_cache(model, prompt[:-1], checkpointed)
    completion, completion_mask = input_ids[rows, -C:], attention_mask[rows, -C:]
    lengths = completion_mask.sum(1).tolist()
    overhead = HFLLM.FORWARD_COST_CPU if input_ids.device.type == "cpu" else HFLLM.FORWARD_COST
    outs = [None] * len(rows)
    for run in padded_runs(lengths, overhead):
        k, width = len(run), max(lengths[j] for j in run)
        cache = _repeated(state, k)
        ids = torch.cat([prompt[-1:].expand(k, 1), completion[run, :width]], dim=1)
        mask = torch.cat([prompt_mask.new_ones(k, prompt.numel()), completion_mask[run, :width]], dim=1)
        labels = ids.clone()
        labels[:, 0] = -100
        labels[:, 1:][completion_mask[run, :width] == 0] = -100
        replayed = checkpointed and cache is not None and torch.is_grad_enabled()
        with _checkpoint_each_layer(model, cache, keep=False) if replayed else contextlib.nullcontext():
            out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True,
                        **with_cache(model, cache))
        entropy = getattr(out, "entropy", None)
        start = out.log_probs.size(1) - width  # the last `width` positions are the completion's
        for i, j in enumerate(run):
            outs[j] = (F.pad(out.log_probs[i, start:], (0, C - width)),
                       None if entropy is None else F.pad(entropy[i, start:], (0, C - width)))
    return outs


def settled_rows(advantages, beta: float):
    """Rows whose GRPO loss has no gradient: advantage exactly 0 (every action of the state scored
    the same) and no KL term (beta 0). Every TRL loss type multiplies the advantage into the
    per-token loss, so such a row adds exactly zero to the gradient; only its values are logged
    (entropy, clip ratios). None when beta is not 0."""
    if beta != 0.0:
        return None
    return (advantages == 0).reshape(advantages.size(0), -1).all(-1)


def untie(advantages, group_size: int):
    """`advantages` (one row per action, a state's G actions contiguous, as TRL computes them) with
    every group whose actions all scored the same set to exactly 0.

    TRL subtracts the group's float32 mean: eight rewards of 0.2 sum to 1.6000001, which leaves each
    row about -1.5e-8, divided by (std + 1e-4) into about -1.5e-4. Such a group teaches nothing (a
    live group's advantages are near +-1) yet was not settled (`settled_rows`), so it paid for a
    backward pass (measured: 2 of 12 quickstart steps in one seed). Tied rewards give identical
    advantages, and identical mean-centred values are 0 in exact arithmetic; a group with two
    different rewards never has identical advantages, so live groups are untouched."""
    rows = advantages.view(-1, group_size)
    tied = (rows == rows[:, :1]).all(dim=1, keepdim=True)
    return rows.masked_fill(tied, 0.0).view_as(advantages)


def generate(model, original, input_ids, attention_mask, groups: list[list[int]] | None = None,
             states: SampledStates | None = None, **kwargs) -> Any:
    """`original(input_ids=..., attention_mask=..., **kwargs)` with one prefill per distinct prompt.

    Every state runs through the model once; then one `generate` call samples every row, the rows
    left-padded to the longest state, as TRL's own call does (one call per state instead left a
    GPU's decode steps G rows wide, and on a CPU read the weights once per state for every token).
    Returns what `generate` returns for the whole batch: the (left-padded) prompts followed by the
    completions, right-padded with the generation config's pad token. `groups` as for
    `logps_and_entropies`; `states` keeps each state's keys and values for the loss.
    """

    config = kwargs.get("generation_config") or model.generation_config
    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    if isinstance(pad, list):
        pad = pad[0]
    room = 1 + (config.max_new_tokens or 0)  # the prompt's last token, then what is sampled
    groups = groups or prompt_groups(input_ids, attention_mask)
    prompts = [input_ids[rows[0]][attention_mask[rows[0]].bool()] for rows in groups]
    owner = [0] * input_ids.size(0)  # each row's state; the rows keep their order (and random draws)
    for g, rows in enumerate(groups):
        for row in rows:
            owner[row] = g
    # The cache holds each state but its last token, which generate feeds first.
    cache = _decode_cache(model, [p[:-1] for p in prompts], owner, room, states)
    width = max(p.numel() for p in prompts)
    ids = input_ids.new_full((len(owner), width), pad)
    mask = attention_mask.new_zeros((len(owner), width))
    for row, g in enumerate(owner):
        ids[row, width - prompts[g].numel() :] = prompts[g]
        mask[row, width - prompts[g].numel() :] = 1
    out = original(input_ids=ids, attention_mask=mask, **with_cache(model, cache), **kwargs)
    new = out[:, width:]
    result = input_ids.new_full((input_ids.size(0), input_ids.size(1) + new.size(1)), pad)
    result[:, : input_ids.size(1)] = input_ids
    result[:, input_ids.size(1) :] = new
    return result
