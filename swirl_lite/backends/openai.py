"""The `openai` backend: any OpenAI-compatible chat server (vLLM serve, llama.cpp server, Ollama, hosted).

This is also how generation scales beyond one GPU: point `generate.openai.base_url` at a vLLM
deployment. Each conversation is one POST to `{base_url}/chat/completions` with the action closing
tags as `stop` strings; up to `concurrency` requests are in flight (a thread pool over one pooled
httpx client). 429, 5xx, timeouts and connection errors are retried with exponential backoff
(honouring `Retry-After`); after `max_retries` the call fails with a one-line error naming the server
(the stage is resumable, so a rerun continues). A request rejected because the chat outgrew the
model's context comes back as `finish_reason="context"`.

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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from swirl_lite.backends import Completion, SamplingParams, restore_stop, seed_for

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_CONTEXT = re.compile(r"context.length|context window|maximum context|too long|exceed", re.IGNORECASE)


class EndpointError(RuntimeError):
    """The server refused or kept failing; the message is one line for the CLI."""


class OpenAILLM:
    name = "openai"
    num_params = None  # unknown behind an API: demonstrations default to 1

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        transport: Any = None,
    ):
        import httpx

        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.Client(headers=headers, timeout=timeout_s, limits=limits, transport=transport)
        self._calls = 0

    @classmethod
    def from_config(cls, cfg: Any, transport: Any = None, section: str = "generate.openai") -> OpenAILLM:
        """From a `config.OpenAIEndpoint` section (base_url, model, api_key_env, concurrency, ...);
        `section` names it in errors (the judge's endpoint is `judge.openai`)."""
        if not cfg.base_url or not cfg.model:
            raise ValueError(f"{section}: base_url and model are required")
        return cls(
            cfg.base_url, cfg.model, os.environ.get(cfg.api_key_env) or None,
            cfg.concurrency, cfg.timeout_s, cfg.max_retries, transport=transport,
        )

    def post(self, body: dict) -> dict | None:
        """One chat completions request with this client's retries (the judge's engine uses it)."""
        return self._post(body)

    def close(self) -> None:
        self.client.close()

    def generate(
        self, conversations: list[list[dict]], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        self._calls += 1
        if seeds is None:
            seeds = [seed_for(params.seed, self._calls, i) for i in range(len(conversations))]
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
            "seed": seed % 2**31,  # some servers take a 32-bit seed only
        }
        if params.stop:
            body["stop"] = list(params.stop)
        data = self._post(body)
        if data is None:
            return Completion("", 0, 0, "context")
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            reason = choice.get("finish_reason") or "stop"
        except (KeyError, IndexError, TypeError, AttributeError):
            raise EndpointError(f"{self.url}: unexpected response shape: {str(data)[:200]}") from None
        usage = data.get("usage") or {}
        if reason == "stop":
            matched = choice.get("stop_reason")
            if isinstance(matched, str) and matched in params.stop and not text.endswith(matched):
                text += matched
            else:
                text = restore_stop(text, params.stop)
        return Completion(
            text,
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            "length" if reason == "length" else "stop",
        )

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
                        problem = f"invalid JSON: {response.text[:120]!r}"
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
        raise EndpointError(f"{self.url}: failed after {self.max_retries + 1} attempts ({problem})")


def _retry_after(response: Any) -> float:
    try:
        return min(float(response.headers.get("retry-after", 0)), 60.0)
    except ValueError:
        return 0.0
