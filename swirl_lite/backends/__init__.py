"""LLM backends: one `generate` call turns a batch of chat conversations into one assistant turn each.

- `hf`: transformers `generate` on the loaded policy (CPU or GPU; unsloth's fast path when loaded so).
- `vllm`: vLLM's offline engine with prefix caching (GPU only; `pip install 'swirl-lite[vllm]'`).
- `openai`: any OpenAI-compatible chat server (vLLM serve, llama.cpp server, Ollama, hosted APIs).
- `ScriptedLLM` (`backends.scripted`): replays given turns; for tests and dry runs.

Every backend cuts a turn right after the first complete action (stop strings `</search_query>`,
`</math_exp>`, `</answer>`), keeps the stop string in the text, and reports token counts. A
conversation whose state plus one action budget no longer fits the context comes back empty with
`finish_reason="context"`, so the rollout can end that trajectory without failing the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from swirl_lite.actions import STOP_STRINGS

if TYPE_CHECKING:
    from swirl_lite.config import Recipe
    from swirl_lite.models import LoadedModel

FINISH_REASONS = ("stop", "length", "context")


@dataclass
class SamplingParams:
    """How one action is sampled. temperature 0 means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = STOP_STRINGS


@dataclass
class Completion:
    """One generated assistant turn."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    # "stop": a stop string or end-of-turn token; "length": the token budget ran out;
    # "context": the conversation no longer fits the model's context (text is empty).
    finish_reason: str = "stop"


@dataclass(eq=False)
class Turn:
    """One conversation's next assistant turn while a continuous-batching backend generates it:
    `seed` makes its sampling its own; the backend keeps its progress in `state` between calls."""

    conversation: list[dict]
    seed: int
    state: Any = None


@runtime_checkable
class Advancing(Protocol):
    """A backend that generates turns a piece at a time, so that a turn that is done leaves at once
    and a new one takes its place (`rollout` keeps the batch full with it). Each call moves every
    given turn on (a backend-sized piece: tokens for `hf`, until any reply for `openai`) and
    returns, per turn, its Completion once finished, else None (call again with it)."""

    def advance(self, turns: list[Turn], params: SamplingParams) -> list[Completion | None]: ...


@runtime_checkable
class LLM(Protocol):
    """A batch chat generator. `seeds` (one per conversation) makes sampling per-conversation
    reproducible where the backend allows it, whatever else shares the batch."""

    def generate(
        self, conversations: list[list[dict]], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]: ...


def params_from_recipe(recipe: Recipe) -> SamplingParams:
    g = recipe.generate
    return SamplingParams(g.temperature, g.top_p, g.max_new_tokens, g.seed)


def make_llm(recipe: Recipe, loaded: LoadedModel | None = None) -> LLM:
    """The backend named by `generate.backend`. `loaded` reuses a model already in memory (hf)."""
    backend = recipe.generate.backend
    if backend == "hf":
        # The model first: unsloth (when used) must be imported before backends.hf imports transformers.
        if loaded is None:
            from swirl_lite.models import load_model

            loaded = load_model(recipe.model)
        elif loaded.backend == "unsloth":  # unsloth's fast generation path (a no-op if already set)
            from unsloth import FastLanguageModel

            FastLanguageModel.for_inference(loaded.model)
        from swirl_lite.backends.hf import HFLLM

        return HFLLM(
            loaded.model, loaded.tokenizer, max_context=recipe.model.max_seq_length,
            prefix_cache=loaded.backend != "unsloth", chunk_tokens=recipe.generate.chunk_tokens or None,
        )
    if backend == "vllm":
        from swirl_lite.backends.vllm import VLLMLLM

        return VLLMLLM.from_config(recipe.model)
    if backend == "openai":
        from swirl_lite.backends.openai import OpenAILLM

        return OpenAILLM.from_config(recipe.generate.openai)
    raise ValueError(f"generate.backend: unknown backend {backend!r}; valid: hf, vllm, openai")


def load_llm(recipe: Recipe, adapter: str | None = None) -> tuple[LLM, LoadedModel | None]:
    """(LLM backend, LoadedModel or None) for the recipe's model with `adapter` on top (evaluate,
    chat). An adapter needs the weights in memory, so not through backend 'openai'."""
    from swirl_lite.models import load_model

    if recipe.generate.backend == "openai":
        if adapter:
            raise ValueError("eval: adapters cannot be evaluated through generate.backend 'openai'; use 'hf'")
        return make_llm(recipe, None), None
    loaded = load_model(recipe.model.model_copy(update={"adapter": adapter}))
    return make_llm(recipe, loaded), loaded


def demonstrations_for(recipe: Recipe, llm: object) -> int:
    """`generate.demonstrations`, or the number the model's size calls for (`params_count_demos`):
    generate, evaluate and chat show the policy the same prompt."""
    if recipe.generate.demonstrations is not None:
        return recipe.generate.demonstrations
    return params_count_demos(getattr(llm, "num_params", None))


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` cut just after the earliest stop string, and whether one was found.

    Stop-string criteria stop generation at a token boundary, so a few characters may follow the
    stop string inside the last token; the action ends at the stop string itself.
    """
    best = -1
    for s in stop:
        i = text.find(s)
        if i >= 0 and (best < 0 or i + len(s) < best):
            best = i + len(s)
    return (text[:best], True) if best >= 0 else (text, False)


def restore_stop(text: str, stop: Sequence[str]) -> str:
    """Re-append the stop string a server dropped (OpenAI `stop` returns the text before it).

    When a turn ends with an opening action tag that was never closed and its closing tag is a stop
    string, the server stopped on that closing tag: put it back so the action parses.
    """
    import re

    opens = list(re.finditer(r"<(\w+)>", text))
    for match in reversed(opens):
        closing = f"</{match.group(1)}>"
        if closing in stop and closing not in text[match.end() :]:
            return text + closing
        if closing in stop:
            return text
    return text


def seed_for(base: int, *parts: object) -> int:
    """A stable 63-bit seed from a base seed and any identifying parts (job id, step index)."""
    import hashlib

    digest = hashlib.sha256(repr((base, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class SeededCalls:
    """For a backend's `generate`: numbers its calls, so that a call given no seeds draws one per
    conversation from the recipe's seed and the call's number (the same on a rerun)."""

    _calls = 0

    def _call_seeds(self, params: SamplingParams, n: int, seeds: Sequence[int] | None) -> Sequence[int]:
        self._calls += 1
        return seeds if seeds is not None else [seed_for(params.seed, self._calls, i) for i in range(n)]


def beyond_context(ids: Sequence[int], params: SamplingParams, max_context: int) -> Completion | None:
    """The empty `finish_reason="context"` completion of a prompt that leaves no room for
    `max_new_tokens` in the context; None when it fits."""
    if len(ids) + params.max_new_tokens > max_context:
        return Completion("", len(ids), 0, "context")
    return None


def generate_fitting(
    prompts: list[list[int]],
    params: SamplingParams,
    max_context: int,
    generate: Callable[[list[int]], list[Completion]],
) -> list[Completion]:
    """Run `generate(indices)` on the prompts that leave room for `max_new_tokens`; the others get
    an empty `finish_reason="context"` completion, so one over-long chat never fails the batch."""
    results: list[Completion | None] = [beyond_context(ids, params, max_context) for ids in prompts]
    fits = [i for i, result in enumerate(results) if result is None]
    if fits:
        for i, completion in zip(fits, generate(fits), strict=True):
            results[i] = completion
    return results  # type: ignore[return-value]


def params_count_demos(num_params: int | None) -> int:
    """Demonstrations by model size when `generate.demonstrations` is unset.

    Small models follow the tag format far better after seeing it done: 2 worked trajectories for
    models under 1B parameters, 1 under 4B, none above (and 1 when the size is unknown: servers).
    """
    if num_params is None:
        return 1
    if num_params < 1_000_000_000:
        return 2
    if num_params < 4_000_000_000:
        return 1
    return 0
