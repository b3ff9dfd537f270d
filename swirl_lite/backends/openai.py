"""The `openai` backend: any OpenAI-compatible chat server (vLLM serve, llama.cpp server, Ollama, hosted).

This is also how generation scales beyond one GPU: point `generate.openai.base_url` at a vLLM
deployment. Each conversation is one POST to `{base_url}/chat/completions` with the action closing
tags as `stop` strings; up to `concurrency` requests are in flight (a thread pool over one pooled
httpx client). In a rollout (`advance`) every trajectory is its own request stream: its next
request goes out as soon as its own reply and tool result are in, whatever the others are doing.
429, 5xx, timeouts and connection errors are retried with exponential backoff (honouring
`Retry-After`); after `max_retries` the call fails with a one-line error naming the server
and the knobs (the stage is resumable, so a rerun continues). The defaults, `timeout_s` 20 and
`max_retries` 2, fail a server that accepts and never answers in about a minute. A request
rejected because the chat outgrew the model's context comes back as `finish_reason="context"`.

A reply is untrusted input: `check_chat_reply` and `check_top_logprobs` check the shape of every
field read (a `usage` that is a string, a `content` that is a number, logprobs in another layout)
and raise a one-line EndpointError naming the server, so the judge can reuse them too.

Servers drop the stop string from the returned text (llama.cpp reports only `finish_reason: stop`;
vLLM also says which string in `stop_reason`), so the closing tag is put back when the turn ends
inside an open action tag (`backends.restore_stop`).

The key is read from the environment variable named by `api_key_env` (unset is fine for local
servers). Token counts come from the server's `usage`.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from swirl_lite.backends import Completion, SamplingParams, SeededCalls, Turn, restore_stop

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_CONTEXT = re.compile(r"context.length|context window|maximum context|too long|exceed", re.IGNORECASE)


class EndpointError(RuntimeError):
    """The server refused or kept failing; the message is one line for the CLI."""


class OpenAILLM(SeededCalls):
    name = "openai"
    num_params = None  # unknown behind an API: demonstrations default to 1

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 20.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        send_seed: bool = True,
        section: str = "generate.openai",
        transport: Any = None,
    ):
        import httpx

        self.url = base_url.rstrip("/") + "/chat/completions"
        self.section = section  # the recipe section its knobs live in, for the error messages
        self.timeout_s = timeout_s
        self.model = model
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.send_seed = send_seed  # off: the server's sampling is not reproducible per trajectory
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.Client(headers=headers, timeout=timeout_s, limits=limits, transport=transport)
        self._pool: ThreadPoolExecutor | None = None  # `advance`'s requests in flight

    @classmethod
    def from_config(cls, cfg: Any, section: str = "generate.openai", transport: Any = None) -> OpenAILLM:
        """From a `config.OpenAIEndpoint` section (base_url, model, api_key_env, concurrency, ...);
        `section` is where it sits in the recipe (`judge.openai` for a judge), named in errors;
        `transport` an httpx transport (tests: a mock server)."""
        if not cfg.base_url or not cfg.model:
            raise ValueError(f"{section}: base_url and model are required by backend 'openai'")
        return cls(
            cfg.base_url, cfg.model, os.environ.get(cfg.api_key_env) or None,
            cfg.concurrency, cfg.timeout_s, cfg.max_retries, send_seed=cfg.send_seed, section=section,
            transport=transport,
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.client.close()

    def advance(self, turns: list[Turn], params: SamplingParams) -> list[Completion | None]:
        """Each turn is its own request, sent when the turn first comes and left in flight across
        calls; a call returns once at least one reply is in (with every other reply already in),
        so a trajectory goes on the moment its own reply lands, never waiting for a slower one,
        and the server's continuous batching always has up to `concurrency` requests to run."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency)
        for turn in turns:
            if turn.state is None:
                turn.state = self._pool.submit(self._one, turn.conversation, params, turn.seed)
        pending = [t.state for t in turns]
        wait(pending, return_when=FIRST_COMPLETED)
        return [t.state.result() if t.state.done() else None for t in turns]

    def generate(
        self, conversations: list[list[dict]], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        seeds = self._call_seeds(params, len(conversations), seeds)
        jobs = list(zip(conversations, seeds, strict=True))
        if len(jobs) == 1 or self.concurrency == 1:
            return [self._one(c, params, s) for c, s in jobs]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs))) as pool:
            return list(pool.map(lambda job: self._one(job[0], params, job[1]), jobs))

    def _one(self, conversation: list[dict], params: SamplingParams, seed: int) -> Completion:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": conversation,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if self.send_seed:
            body["seed"] = seed % 2**31  # some servers take a 32-bit seed only
        if params.stop:
            body["stop"] = list(params.stop)
        data = self._post(body)
        if data is None:
            return Completion("", 0, 0, "context")
        reply = check_chat_reply(data, self.url)
        text, reason = reply.text, reply.finish_reason
        if reason == "stop":
            matched = reply.stop_reason
            if matched is not None and matched in params.stop and not text.endswith(matched):
                text += matched
            else:
                text = restore_stop(text, params.stop)
        return Completion(
            text, reply.prompt_tokens, reply.completion_tokens, "length" if reason == "length" else "stop"
        )

    def chat(self, body: dict) -> dict:
        """One POST of `body` (model added) with the retries of `generate`; the parsed JSON reply,
        or None when the request outgrew the context. For callers that read other fields (a
        judge's `top_logprobs`: pass the reply to `check_top_logprobs`)."""
        return self._post({"model": self.model, **body})

    def _post(self, body: dict) -> dict | None:
        """The JSON response; None when the server says the request exceeds the context."""
        import httpx

        problem = ""
        for attempt in range(self.max_retries + 1):
            wait = self.backoff_s * 2**attempt * (0.5 + random.random())
            try:
                response = self.client.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        problem = f"the reply is not JSON: {response.text[:120]!r}"
                elif response.status_code in RETRY_STATUS:
                    problem = f"HTTP {response.status_code}: {response.text[:160]}"
                    wait = max(wait, _retry_after(response))
                elif response.status_code == 400 and _CONTEXT.search(response.text):
                    return None
                else:
                    raise EndpointError(f"{self.url}: HTTP {response.status_code}: {response.text[:200]}")
            if attempt < self.max_retries:
                time.sleep(wait)
        problem = " ".join(problem.split())
        raise EndpointError(
            f"{self.url}: failed after {self.max_retries + 1} attempts ({problem}); is the server up? "
            f"{self.section}.timeout_s={self.timeout_s:g} and {self.section}.max_retries={self.max_retries} "
            "set how long to wait"
        )


# ---------------------------------------------------------------- reply shapes (untrusted input)


@dataclass
class ChatReply:
    text: str
    finish_reason: str  # as the server said it; "stop" when it said nothing
    stop_reason: str | None  # vLLM: the stop string that ended the turn
    prompt_tokens: int
    completion_tokens: int


def _bad(url: str, what: str, data: Any) -> EndpointError:
    return EndpointError(
        f"{url}: unexpected reply ({what}): {' '.join(str(data).split())[:160]}; "
        "is this an OpenAI-compatible /v1 server?"
    )


def _first_choice(data: Any, url: str) -> dict:
    if not isinstance(data, dict):
        raise _bad(url, "not a JSON object", data)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _bad(url, "no choices[0] object", data)
    return choices[0]


def _count(usage: dict, key: str, url: str, data: Any) -> int:
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _bad(url, f"usage.{key} is not a count", data)
    return int(value)


def check_chat_reply(data: Any, url: str) -> ChatReply:
    """The fields of a chat completion reply that swirl-lite reads, each checked for type; an
    EndpointError naming the server and the field otherwise (a reply is untrusted input)."""
    choice = _first_choice(data, url)
    message = choice.get("message")
    if not isinstance(message, dict):
        raise _bad(url, "choices[0].message is not an object", data)
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise _bad(url, "choices[0].message.content is not text", data)
    reason = choice.get("finish_reason")
    if reason is not None and not isinstance(reason, str):
        raise _bad(url, "choices[0].finish_reason is not text", data)
    usage = data.get("usage")
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise _bad(url, "usage is not an object", data)
    matched = choice.get("stop_reason")
    return ChatReply(
        content or "", reason or "stop", matched if isinstance(matched, str) else None,
        _count(usage, "prompt_tokens", url, data), _count(usage, "completion_tokens", url, data),
    )


def check_top_logprobs(data: Any, url: str) -> list[tuple[str, float]]:
    """(token, logprob) pairs of the first generated token's `top_logprobs` in a chat reply
    (`logprobs: true, top_logprobs: k`); an EndpointError naming the server when the reply has
    another shape (no logprobs, a number where a token should be, a logprob that is not a number)."""
    choice = _first_choice(data, url)
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        raise _bad(url, "no choices[0].logprobs.content[0]; does the server support logprobs?", data)
    top = content[0].get("top_logprobs")
    if not isinstance(top, list):
        raise _bad(url, "choices[0].logprobs.content[0].top_logprobs is not a list", data)
    pairs: list[tuple[str, float]] = []
    for entry in top:
        token = entry.get("token") if isinstance(entry, dict) else None
        value = entry.get("logprob") if isinstance(entry, dict) else None
        if not isinstance(token, str) or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(url, "a top_logprobs entry is not {token: text, logprob: number}", data)
        if value != value or value > 0:
            raise _bad(url, "a logprob is NaN or above 0", data)
        pairs.append((token, float(value)))
    return pairs


def _retry_after(response: Any) -> float:
    try:
        return min(float(response.headers.get("retry-after", 0)), 60.0)
    except ValueError:
        return 0.0
