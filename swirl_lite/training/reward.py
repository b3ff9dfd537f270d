"""The RL reward: the judge's score R(a | s) of a freshly sampled action a given its state s.

METHOD.md §4: the reward is a generative reward model (the judge) that rates the sampled action in
its state; no gold labels. `JudgeReward` wraps any StepScorer (`scorer.score(subs) -> verdicts`,
verdict.score in [0, 1]) as a TRL reward function, and logs per batch the share of sampled actions
that are valid, call a tool, or answer (through TRL's `log_metric` hook, averaged per logging step).

`FormatReward` is a StepScorer too: 1 for a well-formed action of an allowed kind, else 0. It needs
no model, so the learning check and the benchmark use it as the policy-only baseline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from swirl_lite.actions import TAGS, parse_action
from swirl_lite.schema import SubTrajectory, Verdict
from swirl_lite.tools.base import ANSWER, NO_ACTION, is_tool_call


def completion_text(completion: object) -> str:
    """The text of one TRL completion: conversational ([{"role", "content"}]) or plain."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def action_shares(texts: list[str], tags: tuple[str, ...] = TAGS) -> dict[str, float]:
    """Share of actions that parse with the run's `tags` (valid), that call a tool (any of the
    run's), and that answer."""
    kinds = [parse_action(t, tags).kind for t in texts]
    n = max(len(kinds), 1)
    return {
        "actions/valid": sum(k != NO_ACTION for k in kinds) / n,
        "actions/tool_call": sum(is_tool_call(k) for k in kinds) / n,
        "actions/answer": sum(k == ANSWER for k in kinds) / n,
    }


class FormatReward:
    """1.0 when the action is one well-formed tag of `tags` (parse_action finds no fault), else 0.0."""

    identity = "format-v1"

    def __init__(self, tags: tuple[str, ...] = TAGS):
        self.tags = tags

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        out = []
        for sub in subs:
            act = parse_action(completion_text(sub.completion), self.tags)
            good = act.kind != "none" and act.malformed is None
            out.append(Verdict(sub.id, self.identity, "GOOD" if good else "BAD", 1.0 if good else 0.0))
        return out


class JudgeReward:
    """A TRL reward function (called with prompts, completions and the dataset's columns)."""

    __name__ = "judge"  # TRL names the reward's metrics after it: rewards/judge/mean

    def __init__(self, scorer, on_batch: Callable[[dict[str, float]], None] | None = None,
                 tags: tuple[str, ...] = TAGS):
        self.scorer = scorer
        self.on_batch = on_batch  # sees each batch's action shares (tests, the learning check)
        self.tags = tags  # the run's action tags (`tools.base.action_tags`): parsing and stop strings

    def __call__(self, prompts, completions, sub, log_metric=None, **_) -> list[float]:
        texts = [completion_text(c) for c in completions]
        subs = []
        for i, (record, text) in enumerate(zip(sub, texts, strict=True)):
            base = SubTrajectory.from_dict(json.loads(record))
            act = parse_action(text, self.tags)
            subs.append(
                replace(
                    base,
                    id=f"{base.id}~{i}",
                    completion=[{"role": "assistant", "content": text}],
                    kind=act.kind,
                )
            )
        verdicts = self.scorer.score(subs)
        if len(verdicts) != len(subs):
            raise RuntimeError(f"judge returned {len(verdicts)} verdicts for {len(subs)} actions")
        shares = action_shares(texts, self.tags)
        if log_metric is not None:
            for name, value in shares.items():
                log_metric(name, value)
        if self.on_batch is not None:
            self.on_batch(shares)
        return [float(v.score) for v in verdicts]
