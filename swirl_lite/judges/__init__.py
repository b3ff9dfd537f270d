"""Judges: the process judge that rates one action given its state (METHOD.md §3), the outcome
judge, and the verdict cache. The same `StepScorer` filters trajectories and is the RL reward.

    scorer = build_scorer(recipe, policy=loaded, cache=run / "judge_cache")
    verdicts = scorer.score(subs)            # one Verdict per SubTrajectory, scores in [0, 1]

`judge.kind`: `llm` (the paper: a model rates each step; `llm.py`), `reference` (gold steps; a
departure, see `reference.py`), `mix` (weighted: reference_weight x reference + the rest x llm).
`judge.format_credit` (a departure, for small policies): a usable new action scores at least this
much, so RL sees a gradient towards the format before it finds any GOOD step (`FormatCredit`).
`judge.model`: `policy` (the policy's base weights, adapter switched off while judging), a hub id,
folder or GGUF (loaded with `models.load_model`), or `openai` (an OpenAI-compatible endpoint).
Verdicts are cached on disk by (judge identity incl. prompt version, state, action), so a rerun or a
second filter strategy never judges a step twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from swirl_lite.config import ModelConfig, Recipe
from swirl_lite.judges.llm import HFEngine, LLMJudge, OpenAIEngine
from swirl_lite.judges.prompts import PROMPT_VERSION, JudgeView, outcome_messages, view_of
from swirl_lite.judges.reference import ReferenceJudge, calculate, same_value
from swirl_lite.schema import SubTrajectory, Verdict
from swirl_lite.tasks.grading import parse_number

__all__ = [
    "CachedScorer", "FormatCredit", "LLMJudge", "LLMOutcomeJudge", "MixScorer", "ReferenceJudge", "StepScorer",
    "VerdictCache", "build_engine", "build_scorer",
]


@runtime_checkable
class StepScorer(Protocol):
    identity: str  # cache key part: judge model + mode + prompt version

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]: ...


class VerdictCache:
    """A sqlite file of verdicts keyed by sha256(identity, state, action)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.suffix != ".sqlite":
            path = path / "verdicts.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.commit()

    @staticmethod
    def key(identity: str, state: Any, action: Any) -> str:
        blob = json.dumps([identity, state, action], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self.db.execute(f"SELECT key, value FROM verdicts WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        return found

    def put_many(self, items: dict[str, dict]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO verdicts (key, value) VALUES (?, ?)",
            [(k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()],
        )
        self.db.commit()


class CachedScorer:
    """Wraps a scorer: cached verdicts are returned as they are; only misses reach the judge."""

    def __init__(self, inner: StepScorer, cache: VerdictCache):
        self.inner, self.cache, self.identity = inner, cache, inner.identity
        self.hits = self.misses = 0

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        keys = [self.cache.key(self.identity, s.prompt, s.completion) for s in subs]
        found = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(subs) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = self.inner.score([subs[i] for i in todo])
            new = {keys[i]: {"label": v.label, "score": v.score, "rationale": v.rationale} for i, v in zip(todo, fresh, strict=True)}
            self.cache.put_many(new)
            found.update(new)
        return [Verdict(s.id, self.identity, **found[k]) for s, k in zip(subs, keys, strict=True)]


class MixScorer:
    """`judge.kind: mix`: weight x reference + (1 - weight) x LLM; GOOD when the mix is >= 0.5."""

    def __init__(self, reference: StepScorer, llm: StepScorer, weight: float):
        self.reference, self.llm, self.weight = reference, llm, weight
        self.identity = f"mix:{weight:g}:{reference.identity}+{llm.identity}"

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        out = []
        for ref, llm in zip(self.reference.score(subs), self.llm.score(subs), strict=True):
            score = self.weight * ref.score + (1 - self.weight) * llm.score
            why = f"reference {ref.score:.2f} ({ref.rationale}); llm {llm.label} {llm.score:.2f}"
            out.append(Verdict(ref.sub_id, self.identity, "GOOD" if score >= 0.5 else "BAD", score, why))
        return out


# Every unsigned number in a text. Not grading's number pattern: that one reads `12 / 4` as the
# fraction 3 and `-5` as negative, where an expression's operands are 12, 4 and 5.
_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?!\d)")


def _numbers(text: str) -> set[float]:
    return {float(n) for n in _NUMBER.findall(text.replace(",", ""))}


def _calculated(view: JudgeView) -> list:
    """The values the trajectory's earlier calculations returned (unparsable results left out)."""
    values = (parse_number(p.result) for p in view.prior if p.kind == "math_exp" and p.result)
    return [v for v in values if v is not None]


def usable_new_step(view: JudgeView) -> bool:
    """One well-formed tool call that does something new: not a repeated query, and for a calculation
    an expression that evaluates, has an operator, uses only numbers the problem or an earlier result
    gave, and gives a value no earlier result had. An answer never earns format credit: a wrong
    answer is wrong, and crediting it was measured to teach a 135M policy to answer at once."""
    if view.kind in ("none", "answer") or view.malformed is not None:
        return False
    if any(p.kind == view.kind and p.query == view.query for p in view.prior):
        return False
    if view.kind != "math_exp":
        return True
    query = view.query or ""
    value = calculate(query)
    if value is None or not re.search(r"\d\s*[-+*/^%]|\w\(", query):
        return False  # an error, or a bare number copied from a result
    known = _numbers(view.question) | {n for p in view.prior if p.result for n in _numbers(p.result)}
    if not _numbers(query) <= known:
        return False  # a number from nowhere
    return not any(same_value(value, e) for e in _calculated(view))


def gold_solution_done(sub: SubTrajectory, view: JudgeView) -> bool:
    """The trajectory (`view` of `sub`) already has the gold answer as a result, or as many
    calculations as the gold solution has steps (`meta["steps"]`); False when the sub carries neither."""
    gold = parse_number(str(sub.gold)) if sub.gold not in (None, "") else None
    if gold is not None and any(same_value(v, gold) for v in _calculated(view)):
        return True
    steps = sub.meta.get("steps") or []
    return bool(steps) and sum(p.kind == "math_exp" for p in view.prior) >= len(steps)


class FormatCredit:
    """`judge.format_credit`: a usable new step scores at least `credit` (< 0.5, so its label stays).

    With a sparse judge (the reference judge on a 135M policy: ~3% of sampled actions GOOD) most
    GRPO groups score all zeros and give no gradient; a small credit for the format separates a
    tag-less ramble from a wrong but usable step, and the judge's 1.0 still dominates. Only steps
    that do something new earn it (`usable_new_step`): crediting every well-formed tag was measured
    to teach the 135M policy to recompute its last result forever instead of answering, and
    crediting wrong answers to answer at once with a number from nowhere.

    With `gold` (the reference judge, which reads gold anyway), a calculation also earns no credit
    once the gold solution is done: an earlier result already equals the gold answer, or the
    trajectory has made as many calculations as the gold solution has steps. Without this, 80 GRPO
    steps taught the 135M policy to keep calculating ("18 + 5", "23 + 5", ...) instead of answering:
    held-out accuracy 13/48 -> 0/48 (learn-cpu, measured).
    """

    def __init__(self, inner: StepScorer, credit: float, gold: bool = False):
        self.inner, self.credit, self.gold = inner, credit, gold
        self.identity = f"{inner.identity}+format>={credit:g}{'-until-gold' if gold else ''}"

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        out = []
        for sub, v in zip(subs, self.inner.score(subs), strict=True):
            view = view_of(sub) if v.score < self.credit else None
            if view is not None and usable_new_step(view) and not (self.gold and gold_solution_done(sub, view)):
                v = replace(v, score=self.credit, rationale=f"{v.rationale}; usable new step")
            out.append(replace(v, judge=self.identity))
        return out


def _policy_base_config(recipe: Recipe) -> ModelConfig:
    return recipe.model.model_copy(update={"adapter": None})


def build_engine(recipe: Recipe, policy: Any = None) -> HFEngine | OpenAIEngine:
    """The model behind an LLM judge, per `judge.model` (see module docstring)."""
    j = recipe.judge
    if j.model == "openai":
        return OpenAIEngine(j.openai, j.max_new_tokens)
    if j.model == "policy":
        name = f"policy={recipe.model.name}:{recipe.model.gguf_file}:{'4bit' if recipe.model.load_in_4bit else 'full'}"
        if policy is None:
            from swirl_lite.models import load_model

            policy = load_model(_policy_base_config(recipe))
        return HFEngine(policy.model, policy.tokenizer, name, j.batch_size, j.max_new_tokens)
    from swirl_lite.models import load_model

    cfg = ModelConfig(
        name=j.model, gguf_file=j.gguf_file, load_in_4bit=j.load_in_4bit, backend="hf", dtype=recipe.model.dtype
    )
    loaded = load_model(cfg)
    name = f"{j.model}:{j.gguf_file}:{'4bit' if j.load_in_4bit else 'full'}"
    return HFEngine(loaded.model, loaded.tokenizer, name, j.batch_size, j.max_new_tokens)


def build_scorer(
    recipe: Recipe,
    policy: Any = None,
    *,
    tools: dict[str, Any] | None = None,
    cache: str | Path | VerdictCache | None = None,
    task_kind: str | None = None,
    engine: HFEngine | OpenAIEngine | None = None,
) -> StepScorer:
    """The step scorer the recipe asks for. `policy` is a LoadedModel reused for judge.model 'policy';
    `tools` ({tag: Tool}) give the reference judge the run's search index; `cache` a verdict store."""
    j = recipe.judge
    store = VerdictCache(cache) if isinstance(cache, (str, Path)) else cache

    def cached(scorer: StepScorer) -> StepScorer:
        return CachedScorer(scorer, store) if store is not None else scorer

    reference = llm = None
    if j.kind in ("reference", "mix"):
        search = (tools or {}).get("search_query")
        reference = cached(ReferenceJudge(search, j.reference_f1, task_kind))
    if j.kind in ("llm", "mix"):
        llm = cached(LLMJudge(engine or build_engine(recipe, policy), j.mode))
    scorer = MixScorer(reference, llm, j.reference_weight) if j.kind == "mix" else reference or llm
    gold = j.kind in ("reference", "mix")
    return FormatCredit(scorer, j.format_credit, gold=gold) if j.format_credit > 0 else scorer


class LLMOutcomeJudge:
    """`judge.outcome: llm`: a YES/NO grader of final answers against gold (METHOD.md §3, §5)."""

    def __init__(self, engine: HFEngine | OpenAIEngine, mode: str, cache: VerdictCache | None = None):
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
