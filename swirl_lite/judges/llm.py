"""LLM judges (METHOD.md §3): a model rates each step GOOD or BAD from its state, or grades a final
answer YES or NO against gold. The model runs on a scoring engine of `backends/scoring.py` (a local
transformers model, or an OpenAI-compatible endpoint through the `openai` backend's client).

The judge reads each step with the run's tools ({tag: Tool}): their tags parse the actions, their
`judge_hint`s say what a good call is (`prompts.criteria`). Without tools, the built-in ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swirl_lite.judges.cache import VerdictCache
from swirl_lite.judges.prompts import PROMPT_VERSION, outcome_messages, process_messages, view_of
from swirl_lite.schema import SubTrajectory, Verdict
from swirl_lite.tools.base import action_tags


def builtin_tools() -> dict[str, Any]:
    """{tag: tool class} of the built-in tools: what a judge reads steps with when no run is given."""
    from swirl_lite.tools.calculator import Calculator
    from swirl_lite.tools.search import SearchTool

    return {Calculator.tag: Calculator, SearchTool.tag: SearchTool}


class LLMJudge:
    """The process judge on an engine. Malformed actions are BAD without a call."""

    def __init__(self, engine: Any, mode: str, tools: Mapping[str, Any] | None = None):
        self.engine, self.mode = engine, mode
        self.tools = dict(tools) if tools is not None else builtin_tools()
        self.tags = action_tags(self.tools)
        self.identity = f"llm:{engine.name}:{mode}:{PROMPT_VERSION}"

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        views = [view_of(s, self.tags) for s in subs]
        todo = [i for i, v in enumerate(views) if v.kind != "none"]
        chats = [process_messages(views[i], self.mode, self.tools) for i in todo]
        results = self.engine.classify(chats, ("GOOD", "BAD"), self.mode)
        verdicts = [
            Verdict(s.id, self.identity, "BAD", 0.0, f"malformed action ({v.malformed})") for s, v in zip(subs, views, strict=True)
        ]
        for i, (label, score, why) in zip(todo, results, strict=True):
            verdicts[i] = Verdict(subs[i].id, self.identity, label, score, why)
        return verdicts


class LLMOutcomeJudge:
    """`judge.outcome: llm`: a YES/NO grader of final answers against gold (METHOD.md §3, §5)."""

    def __init__(self, engine: Any, mode: str, cache: VerdictCache | None = None):
        self.engine, self.mode, self.cache = engine, mode, cache
        self.identity = f"outcome:{engine.name}:{mode}:{PROMPT_VERSION}"

    def grade(self, items: list[tuple[str, str, str | None]]) -> list[bool]:
        """(question, gold, prediction) -> correct. A missing prediction is never correct."""
        keys = [VerdictCache.key(self.identity, [q, g], p) for q, g, p in items]
        found = self.cache.get_many(keys) if self.cache else {}
        todo = [i for i, (k, item) in enumerate(zip(keys, items, strict=True)) if k not in found and item[2] is not None]
        chats = [outcome_messages(items[i][0], items[i][1], items[i][2] or "", self.mode) for i in todo]
        new = {}
        for i, (label, score, why) in zip(todo, self.engine.classify(chats, ("YES", "NO"), self.mode), strict=True):
            new[keys[i]] = {"label": label, "score": score, "rationale": why}
        if self.cache and new:
            self.cache.put_many(new)
        found.update(new)
        return [items[i][2] is not None and found.get(k, {}).get("label") == "YES" for i, k in enumerate(keys)]
