"""LLM judges: a local transformers model (policy weights or a separate model) or an OpenAI endpoint.

Both engines answer one question for a batch of judge chats: which of two labels (GOOD/BAD, or
YES/NO for the outcome grader)? Two modes (METHOD.md §6):
- `logprob`: one forward pass per batch; the score is P(first) / (P(first) + P(second)) read off
  the next-token distribution after the prompt (HF: after an assistant turn that starts `Verdict:`;
  OpenAI: `max_tokens=1` with `top_logprobs`). Graded, fast, never invalid on HF.
- `generate`: the judge writes a short rationale and a `Verdict: X` line, parsed strictly
  (`prompts.parse_verdict`); an unparsable reply is `invalid` and scores 0.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from swirl_lite.judges.prompts import PROMPT_VERSION, parse_verdict, process_messages, view_of
from swirl_lite.schema import SubTrajectory, Verdict

Scored = tuple[str, float, str | None]  # (label, score, rationale)


def _label_token_ids(tokenizer, word: str) -> set[int]:
    """Token ids that start `word` in any case, with or without a leading space.

    Whole-word tokens are preferred: when `" BAD"` splits as `" B" + "AD"`, the first token " B"
    would also count every other word starting with B, so single-token variants (" Bad", "bad")
    stand for the label whenever the vocabulary has any; otherwise the first tokens are used.
    """
    variants = [f"{space}{form}" for form in (word, word.capitalize(), word.lower()) for space in (" ", "")]
    encoded = [tokenizer.encode(v, add_special_tokens=False) for v in variants]
    whole = {ids[0] for ids in encoded if len(ids) == 1}
    return whole or {ids[0] for ids in encoded if ids}


class HFEngine:
    """A transformers causal LM as a judge; `disable_adapter` judges a PeftModel's base weights."""

    def __init__(self, model: Any, tokenizer: Any, name: str, batch_size: int = 8, max_new_tokens: int = 256):
        self.model, self.tokenizer = model, tokenizer
        self.name, self.batch_size, self.max_new_tokens = name, batch_size, max_new_tokens

    @contextlib.contextmanager
    def _base_weights(self):
        """Adapter off and eval mode while judging; both restored afterwards, even on error."""
        model = self.model
        was_training = model.training
        model.eval()
        ctx = model.disable_adapter() if hasattr(model, "disable_adapter") and hasattr(model, "peft_config") else contextlib.nullcontext()
        try:
            with ctx:
                yield model
        finally:
            if was_training:
                model.train()

    def _texts(self, chats: list[list[dict]], prefix: str) -> list[str]:
        return [
            self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) + prefix
            for chat in chats
        ]

    def _encode(self, texts: list[str]):
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False, padding_side="left")
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in enc.items()}

    def classify(self, chats: list[list[dict]], labels: tuple[str, str], mode: str) -> list[Scored]:
        out: list[Scored] = []
        for start in range(0, len(chats), self.batch_size):
            batch = chats[start : start + self.batch_size]
            out.extend(self._logprob(batch, labels) if mode == "logprob" else self._generate(batch, labels))
        return out

    def _logprob(self, chats: list[list[dict]], labels: tuple[str, str]) -> list[Scored]:
        import torch

        pos, neg = (_label_token_ids(self.tokenizer, w) for w in labels)
        pos, neg = pos - neg, neg - pos
        if not pos or not neg:
            raise ValueError(f"judge {self.name}: {labels[0]} and {labels[1]} start with the same token")
        enc = self._encode(self._texts(chats, "Verdict:"))
        # Left padding: positions must count real tokens only, or padded rows see shifted positions.
        positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        with self._base_weights() as model, torch.no_grad():
            try:  # only the last position's logits: skips a [batch, length, vocab] tensor
                out = model(**enc, position_ids=positions, logits_to_keep=1)
            except TypeError:  # a model class without logits_to_keep
                out = model(**enc, position_ids=positions)
            logits = out.logits[:, -1, :].float()
        logp = torch.log_softmax(logits, dim=-1)
        lp_pos = torch.logsumexp(logp[:, sorted(pos)], dim=-1)
        lp_neg = torch.logsumexp(logp[:, sorted(neg)], dim=-1)
        p_pos = torch.sigmoid(lp_pos - lp_neg).tolist()  # softmax over the two label masses
        return [(labels[0] if p >= 0.5 else labels[1], float(p), None) for p in p_pos]

    def _generate(self, chats: list[list[dict]], labels: tuple[str, str]) -> list[Scored]:
        import torch

        enc = self._encode(self._texts(chats, ""))
        with self._base_weights() as model, torch.no_grad():
            ids = model.generate(
                **enc,
                do_sample=False,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=[f"Verdict: {w}" for w in labels],
                tokenizer=self.tokenizer,
            )
        texts = self.tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        out: list[Scored] = []
        for text in texts:
            label = parse_verdict(text, labels)
            out.append((label, 1.0 if label == labels[0] else 0.0, text.strip()))
        return out


class OpenAIEngine:
    """An OpenAI-compatible chat completions endpoint (vLLM, llama.cpp server, hosted APIs)."""

    def __init__(self, cfg: Any, max_new_tokens: int = 256, transport: Any = None):
        import httpx

        if not cfg.base_url or not cfg.model:
            raise ValueError("judge.openai.base_url and judge.openai.model must be set for judge.model 'openai'")
        self.cfg, self.max_new_tokens = cfg, max_new_tokens
        self.name = f"openai:{cfg.base_url}:{cfg.model}"
        key = os.environ.get(cfg.api_key_env)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(
            base_url=cfg.base_url.rstrip("/"), headers=headers, timeout=cfg.timeout_s, transport=transport
        )

    def _post(self, payload: dict) -> dict:
        import httpx

        for attempt in range(self.cfg.max_retries + 1):
            try:
                resp = self.client.post("/chat/completions", json=payload)
                if resp.status_code < 400:
                    return resp.json()
                retryable = resp.status_code in (408, 409, 429) or resp.status_code >= 500
                if not retryable or attempt == self.cfg.max_retries:
                    raise RuntimeError(f"judge endpoint {self.cfg.base_url}: HTTP {resp.status_code}: {resp.text[:200]}")
            except httpx.TransportError as exc:
                if attempt == self.cfg.max_retries:
                    raise RuntimeError(f"judge endpoint {self.cfg.base_url}: {type(exc).__name__}: {exc}") from None
            time.sleep(min(30.0, 0.5 * 2**attempt))
        raise AssertionError("unreachable")

    def _one(self, chat: list[dict], labels: tuple[str, str], mode: str) -> Scored:
        payload: dict[str, Any] = {"model": self.cfg.model, "messages": chat, "temperature": 0.0}
        if mode == "generate":
            payload["max_tokens"] = self.max_new_tokens
            text = (self._post(payload)["choices"][0]["message"].get("content") or "").strip()
            label = parse_verdict(text, labels)
            return label, 1.0 if label == labels[0] else 0.0, text
        payload.update(max_tokens=1, logprobs=True, top_logprobs=20)
        choice = self._post(payload)["choices"][0]
        return _score_top_logprobs(choice, labels)

    def classify(self, chats: list[list[dict]], labels: tuple[str, str], mode: str) -> list[Scored]:
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(lambda chat: self._one(chat, labels, mode), chats))


def _score_top_logprobs(choice: dict, labels: tuple[str, str]) -> Scored:
    """Sum the probability of top tokens that begin each label; neither present -> invalid."""
    content = ((choice.get("logprobs") or {}).get("content") or [{}])[0]
    mass = [0.0, 0.0]
    for entry in content.get("top_logprobs") or []:
        token = str(entry.get("token", "")).strip().upper()
        for i, word in enumerate(labels):
            if token and word.startswith(token) and not labels[1 - i].startswith(token):
                mass[i] += math.exp(float(entry.get("logprob", -math.inf)))
    if mass[0] + mass[1] == 0.0:
        return "invalid", 0.0, f"no {labels[0]}/{labels[1]} token in top_logprobs"
    p = mass[0] / (mass[0] + mass[1])
    return (labels[0] if p >= 0.5 else labels[1]), p, None


class LLMJudge:
    """The process judge (METHOD.md §3) on an engine. Malformed actions are BAD without a call."""

    def __init__(self, engine: HFEngine | OpenAIEngine, mode: str):
        self.engine, self.mode = engine, mode
        self.identity = f"llm:{engine.name}:{mode}:{PROMPT_VERSION}"

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        views = [view_of(s) for s in subs]
        todo = [i for i, v in enumerate(views) if v.kind != "none"]
        results = self.engine.classify([process_messages(views[i], self.mode) for i in todo], ("GOOD", "BAD"), self.mode)
        verdicts = [
            Verdict(s.id, self.identity, "BAD", 0.0, f"malformed action ({v.malformed})") for s, v in zip(subs, views, strict=True)
        ]
        for i, (label, score, why) in zip(todo, results, strict=True):
            verdicts[i] = Verdict(subs[i].id, self.identity, label, score, why)
        return verdicts
