"""The one place a step scorer is built: `judge_for_run` for the filter, the RL reward (train) and
evaluate's judged steps, so the three score a step identically (METHOD.md §4: the scorer that
filters is the RL reward).

    scorer = judge_for_run(recipe, run_dir, policy=loaded)       # the run's tools, index and cache
    verdicts = scorer.score(subs)                                 # one Verdict per SubTrajectory

`build_scorer` assembles the scorer from parts (the run's tools, a verdict cache, an engine) for
callers that have them at hand (benchmarks, tests); `build_engine` the model behind an LLM judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swirl_lite.config import ModelConfig, Recipe
from swirl_lite.judges.cache import CachedScorer, VerdictCache
from swirl_lite.judges.llm import LLMJudge
from swirl_lite.judges.reference import ReferenceJudge
from swirl_lite.judges.shaping import FormatCredit, MixScorer
from swirl_lite.tools.base import action_tags

if TYPE_CHECKING:
    from swirl_lite.judges import StepScorer


def _policy_base_config(recipe: Recipe) -> ModelConfig:
    return recipe.model.model_copy(update={"adapter": None})


def build_engine(recipe: Recipe, policy: Any = None) -> Any:
    """The model behind an LLM judge, per `judge.model` (see `swirl_lite.judges`)."""
    from swirl_lite.backends.scoring import HFEngine, OpenAIEngine

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
    tools: Mapping[str, Any] | None = None,
    cache: str | Path | VerdictCache | None = None,
    task_kind: str | None = None,
    engine: Any = None,
) -> StepScorer:
    """The step scorer the recipe asks for, from parts. `policy` is a LoadedModel reused for
    judge.model 'policy'; `tools` ({tag: Tool}, the run's) say which tags are actions, what the LLM
    judge weighs for each, and give the reference judge the run's search index; `cache` a verdict
    store; `engine` an LLM engine already built (else `build_engine`)."""
    j = recipe.judge
    store = VerdictCache(cache) if isinstance(cache, (str, Path)) else cache

    def cached(scorer: StepScorer) -> StepScorer:
        return CachedScorer(scorer, store) if store is not None else scorer

    tags = action_tags(tools) if tools is not None else None
    reference = llm = None
    if j.kind in ("reference", "mix"):
        reference = cached(ReferenceJudge(tools, j.reference_f1, task_kind, grounded=j.grounded))
    if j.kind in ("llm", "mix"):
        llm = cached(LLMJudge(engine or build_engine(recipe, policy), j.mode, tools))
    scorer = MixScorer(reference, llm, j.reference_weight) if j.kind == "mix" else reference or llm
    gold = j.kind in ("reference", "mix")
    return FormatCredit(scorer, j.format_credit, gold=gold, tags=tags) if j.format_credit > 0 else scorer


def tools_for_run(recipe: Recipe, task: Any = None) -> tuple[Any, dict[str, Any] | None]:
    """(task, the run's tools) as generate built them (`tools.run_tools`). Where the task or its
    tools cannot be built here (a custom task whose data is elsewhere, a corpus that is gone), the
    judge falls back to the built-in tags (None) and says so: math/QA is then inferred per step and
    searches run over each question's own paragraphs."""
    from swirl_lite.console import console
    from swirl_lite.tools import run_tools

    try:
        if task is None:
            from swirl_lite.tasks import get_task

            task = get_task(recipe.data)
    except Exception as exc:  # noqa: BLE001 - any user task failure: say it, judge without it
        console.print(f"[yellow]judge: task not loaded ({exc}); steps read with the built-in tools[/]")
        return None, None
    try:
        return task, run_tools(recipe, task)
    except Exception as exc:  # noqa: BLE001 - a corpus or user tool that fails here: say it, fall back
        console.print(f"[yellow]judge: the run's tools not built ({exc}); built-in tools, each question's paragraphs[/]")
        return task, None


def judge_for_run(
    recipe: Recipe,
    run_dir: Any,
    *,
    policy: Any = None,
    tools: Mapping[str, Any] | None = None,
    task: Any = None,
    engine: Any = None,
) -> StepScorer:
    """The run's step scorer: the run's tools (`tools_for_run`) unless given, the task's kind, and
    the verdict cache in `run_dir/judge_cache`. Filter, train and evaluate all call this."""
    if tools is None:
        task, tools = tools_for_run(recipe, task)
    kind = getattr(task, "kind", None)
    return build_scorer(recipe, policy, tools=tools, cache=run_dir / "judge_cache", task_kind=kind, engine=engine)
