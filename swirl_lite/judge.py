"""The judge API in one import: `from swirl_lite.judge import build_scorer, StepScorer`.

The implementation lives in the `swirl_lite.judges` package (prompts, LLM engines, reference judge,
cache); this module is the stable name the filter and train stages import.
"""

from swirl_lite.judges import (
    CachedScorer,
    LLMJudge,
    LLMOutcomeJudge,
    MixScorer,
    ReferenceJudge,
    StepScorer,
    VerdictCache,
    build_engine,
    build_scorer,
)

__all__ = [
    "CachedScorer", "LLMJudge", "LLMOutcomeJudge", "MixScorer", "ReferenceJudge", "StepScorer",
    "VerdictCache", "build_engine", "build_scorer",
]
