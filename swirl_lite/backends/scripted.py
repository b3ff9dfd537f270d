"""ScriptedLLM: an `LLM` that replays given assistant turns instead of sampling them.

For tests and dry runs of anything built on the rollout (generate, evaluate, chat, judges): the
turns are exact, so counts and invariants can be asserted. It behaves like a real backend where it
matters: it cuts each turn at the first stop string (unless `honor_stop=False`, to imitate a server
that ignores stop strings), truncates at `max_new_tokens`, reports `finish_reason="context"` when the
chat outgrows `max_context`, and counts tokens with a real tokenizer's chat template when given one
(whitespace words otherwise).

Which turn comes next: the number of assistant turns after the conversation's question. The question
is the latest user message containing the `anchor` ("Question:", as the built-in prompts write it),
or, when `turns` maps question substrings to scripts, the latest user message containing a key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from swirl_lite.backends import Completion, SamplingParams, cut_at_stop

Script = Sequence[str] | Mapping[str, Sequence[str]] | Callable[[list[dict]], str]


class ScriptedLLM:
    name = "scripted"

    def __init__(
        self,
        turns: Script,
        *,
        tokenizer: Any = None,
        anchor: str = "Question:",
        honor_stop: bool = True,
        max_context: int | None = None,
        delay_s: float = 0.0,
        num_params: int | None = None,
    ):
        self.turns = turns
        self.tokenizer = tokenizer
        self.anchor = anchor
        self.honor_stop = honor_stop
        self.max_context = max_context
        self.delay_s = delay_s
        self.num_params = num_params
        self.calls: list[int] = []  # batch size of every generate call, in order

    def generate(
        self, conversations: list[list[dict]], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        self.calls.append(len(conversations))
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self._one(conv, params) for conv in conversations]

    # ------------------------------------------------------------ one turn

    def next_turn(self, conversation: list[dict]) -> str:
        """The scripted text for this conversation's next assistant turn ("" once a script runs out)."""
        if callable(self.turns):
            return self.turns(conversation)
        if isinstance(self.turns, Mapping):
            key, start = self._latest(conversation, list(self.turns))
            script = self.turns[key] if key is not None else ()
        else:
            _, start = self._latest(conversation, [self.anchor])
            script = self.turns
        done = sum(1 for m in conversation[start + 1 :] if m["role"] == "assistant")
        return script[done] if done < len(script) else ""

    @staticmethod
    def _latest(conversation: list[dict], keys: list[str]) -> tuple[str | None, int]:
        for i in range(len(conversation) - 1, -1, -1):
            message = conversation[i]
            if message["role"] != "user":
                continue
            for key in keys:
                if key in message["content"]:
                    return key, i
        return None, -1

    def _one(self, conversation: list[dict], params: SamplingParams) -> Completion:
        prompt_tokens = self._prompt_tokens(conversation)
        if self.max_context is not None and prompt_tokens + params.max_new_tokens > self.max_context:
            return Completion("", prompt_tokens, 0, "context")
        text = self.next_turn(conversation)
        reason = "stop"
        if self.honor_stop:
            text, _ = cut_at_stop(text, params.stop)
        pieces = self._split(text)
        if len(pieces) > params.max_new_tokens:
            text, reason = self._join(pieces[: params.max_new_tokens]), "length"
            pieces = pieces[: params.max_new_tokens]
        return Completion(text, prompt_tokens, len(pieces), reason)

    def _prompt_tokens(self, conversation: list[dict]) -> int:
        if self.tokenizer is None:
            return sum(len(m["content"].split()) for m in conversation)
        text = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _split(self, text: str) -> list:
        if self.tokenizer is None:
            return text.split(" ") if text else []
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _join(self, pieces: list) -> str:
        if self.tokenizer is None:
            return " ".join(pieces)
        return self.tokenizer.decode(pieces)


class PacedScriptedLLM(ScriptedLLM):
    """A ScriptedLLM that generates like a continuous-batching backend (`backends.Advancing`):
    each `advance` call moves every turn on by `tokens_per_round` tokens (words without a
    tokenizer), so a long scripted action takes several rounds and a short one leaves after one.
    `rounds` records, per call, the conversations it was given (for tests of the scheduler)."""

    name = "scripted-paced"

    def __init__(self, turns: Script, *, tokens_per_round: int = 4, **kwargs: Any):
        super().__init__(turns, **kwargs)
        self.tokens_per_round = tokens_per_round
        self.rounds: list[list[list[dict]]] = []

    def advance(self, turns: list, params: SamplingParams) -> list[Completion | None]:
        self.rounds.append([t.conversation for t in turns])
        out: list[Completion | None] = []
        for turn in turns:
            if turn.state is None:  # [the whole turn, the tokens it has taken so far]
                turn.state = [self._one(turn.conversation, params), 0]
            done, taken = turn.state
            taken = min(taken + self.tokens_per_round, max(done.completion_tokens, 1))
            turn.state[1] = taken
            out.append(done if taken >= done.completion_tokens else None)
        return out
