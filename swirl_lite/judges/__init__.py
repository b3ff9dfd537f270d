"""Judges: the process judge that rates one action given its state (METHOD.md §3), the outcome
judge, and the verdict cache. The same scorer filters trajectories, is the RL reward and judges
evaluation steps: each stage gets it from `judge_for_run` (`build.py`).

    scorer = judge_for_run(recipe, run_dir, policy=loaded)
    verdicts = scorer.score(subs)            # one Verdict per SubTrajectory, scores in [0, 1]

`judge.kind`: `llm` (the paper: a model rates each step; `llm.py`), `reference` (gold steps; a
departure, see `reference.py`), `mix` (weighted: reference_weight x reference + the rest x llm;
`shaping.py`). `judge.format_credit` (a departure, for small policies): a usable new action scores
at least this much, so RL sees a gradient towards the format before it finds any GOOD step
(`shaping.FormatCredit`). `judge.model`: `policy` (the policy's base weights, adapter switched off
while judging), a hub id, folder or GGUF (loaded with `models.load_model`), or `openai` (an
OpenAI-compatible endpoint); the engines live in `backends/scoring.py`. Verdicts are cached on disk
by (judge identity incl. prompt version, state, action) (`cache.py`), so a rerun or a second filter
strategy never judges a step twice. Steps are read with the run's tools (`tools/base.py`): a user
tool's tag is an action, and its `judge_hint` says what the LLM judge weighs.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from swirl_lite.judges.build import build_engine, build_scorer, judge_for_run, tools_for_run
from swirl_lite.judges.cache import CachedScorer, VerdictCache
from swirl_lite.judges.llm import LLMJudge, LLMOutcomeJudge
from swirl_lite.judges.reference import ReferenceJudge
from swirl_lite.judges.shaping import FormatCredit, MixScorer
from swirl_lite.schema import SubTrajectory, Verdict

__all__ = [
    "CachedScorer", "FormatCredit", "LLMJudge", "LLMOutcomeJudge", "MixScorer", "ReferenceJudge", "StepScorer",
    "VerdictCache", "build_engine", "build_scorer", "judge_for_run", "tools_for_run",
]


@runtime_checkable
class StepScorer(Protocol):
    identity: str  # cache key part: judge model + mode + prompt version

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]: ...
