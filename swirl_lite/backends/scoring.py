"""Scoring engines: which of two labels (GOOD/BAD, YES/NO) a model gives a batch of chats.

The LLM judges (`judges/llm.py`) run on one of these:
- `HFEngine`: a transformers causal LM in memory (the policy's base weights with its adapter
  switched off, or a separate judge model);
- `OpenAIEngine`: an OpenAI-compatible endpoint, through the `openai` backend's client (one retry
  and timeout policy for generation and judging).
Two modes (METHOD.md §6):
- `logprob`: one forward pass per batch; the score is P(first) / (P(first) + P(second)) read off
  the next-token distribution after the prompt (HF: after an assistant turn that starts `Verdict:`;
  OpenAI: `max_tokens=1` with `top_logprobs`). Graded, fast, never invalid on HF.
- `generate`: the judge writes a short rationale and a `Verdict: X` line, parsed strictly
  (`parse_verdict`); an unparsable reply is `invalid` and scores 0.
"""

from __future__ import annotations

import contextlib
import math
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from swirl_lite.models import base_weights

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
        try:
            with base_weights(model):
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
    """An OpenAI-compatible chat completions endpoint (vLLM, llama.cpp server, hosted APIs).

    Requests go through the `openai` generation backend's client (`backends/openai.py`): one retry,
    timeout and error policy for generation and judging, and every reply checked for shape before
    it is read (errors name the endpoint and `judge.openai`'s knobs)."""

    def __init__(self, cfg: Any, max_new_tokens: int = 256, transport: Any = None):
        from swirl_lite.backends.openai import OpenAILLM

        if not cfg.base_url or not cfg.model:
            raise ValueError("judge.openai.base_url and judge.openai.model must be set for judge.model 'openai'")
        self.cfg, self.max_new_tokens = cfg, max_new_tokens
        self.name = f"openai:{cfg.base_url}:{cfg.model}"
        self.client = OpenAILLM.from_config(cfg, section="judge.openai", transport=transport)

    def _one(self, chat: list[dict], labels: tuple[str, str], mode: str) -> Scored:
        from swirl_lite.backends.openai import check_chat_reply, check_top_logprobs

        payload: dict[str, Any] = {"messages": chat, "temperature": 0.0}
        if mode == "generate":
            payload["max_tokens"] = self.max_new_tokens
            data = self.client.chat(payload)
            if data is None:
                return "invalid", 0.0, "the judge chat does not fit the endpoint's context"
            text = check_chat_reply(data, self.client.url).text.strip()
            label = parse_verdict(text, labels)
            return label, 1.0 if label == labels[0] else 0.0, text
        payload.update(max_tokens=1, logprobs=True, top_logprobs=20)
        data = self.client.chat(payload)
        if data is None:
            return "invalid", 0.0, "the judge chat does not fit the endpoint's context"
        return score_top_logprobs(check_top_logprobs(data, self.client.url), labels)

    def classify(self, chats: list[list[dict]], labels: tuple[str, str], mode: str) -> list[Scored]:
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(lambda chat: self._one(chat, labels, mode), chats))


def score_top_logprobs(top: list[tuple[str, float]], labels: tuple[str, str]) -> Scored:
    """Sum the probability of top tokens that begin each label; neither present -> invalid."""
    mass = [0.0, 0.0]
    for raw, logprob in top:
        token = raw.strip().upper()
        for i, word in enumerate(labels):
            if token and word.startswith(token) and not labels[1 - i].startswith(token):
                mass[i] += math.exp(logprob)
    if mass[0] + mass[1] == 0.0:
        return "invalid", 0.0, f"no {labels[0]}/{labels[1]} token in top_logprobs"
    p = mass[0] / (mass[0] + mass[1])
    return (labels[0] if p >= 0.5 else labels[1]), p, None


# ---------------------------------------------------------------- strict verdict parsing

_VERDICT = re.compile(r"^\W*verdict\W*:\W*([A-Za-z]+)\W*$", re.IGNORECASE)


def parse_verdict(text: str, labels: tuple[str, str] = ("GOOD", "BAD")) -> str:
    """`GOOD`/`BAD` (or the given labels) from the judge's `Verdict: X` lines; else `invalid`.

    Strict: a verdict line must say exactly one of the two labels; none, another word, or two
    verdict lines that disagree make the reply `invalid` (counted, and treated as not GOOD).
    """
    found = set()
    for line in text.splitlines():
        m = _VERDICT.match(line.strip())
        if m:
            word = m.group(1).upper()
            if word not in labels:
                return "invalid"
            found.add(word)
    return found.pop() if len(found) == 1 else "invalid"
