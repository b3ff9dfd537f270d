"""Filter: keep the trajectories a strategy accepts, with every step's verdict (METHOD.md §3).

Strategies (`filter.strategy`):
- `none`: keep everything (no judging);
- `process`: the judge scores every step; a trajectory is kept only if every step's score is
  >= `filter.threshold` (the paper: every step GOOD; the paper's default for RL);
- `outcome`: keep trajectories whose final answer is correct (the task's grader, already in
  `outcome`; or an LLM YES/NO grader with `judge.outcome: llm`);
- `process+outcome`: both.

`filter.unit` (process strategies): `trajectory` (the paper, default) keeps whole trajectories;
`state` keeps each sub-trajectory whose state holds only GOOD actions (its own action may be BAD),
with `process+outcome` only those of correct trajectories. Why: in RL the data's actions are never
trained on, each kept state gets fresh actions (METHOD.md §4), so one BAD step need not drop the
good states before it, e.g. the state right after two good calculations, where a policy that
answers too early must learn to take the third step. A departure from the paper, measured against
it (README, Learn on CPU): the 135M model, one generation of 96 trajectories, 80 GRPO steps, 96
held-out problems, 3 training seeds each: `state` (155 of 292 states kept) +56.6 points over the
base model (+50.0 .. +60.4), the paper's `trajectory` (35 states of 12 trajectories) +20.8 (+17.7 ..
+22.9), every run p < 0.01; on another CPU's generation (296 states) the order reversed: `state`
(161 kept) +26.7 (+21.9 .. +33.3), `trajectory` (38) +42.0 (+40.6 .. +42.7), every run p < 0.001.
Over both, six seeds each, `state` +41.7 and `trajectory` +31.4: which unit wins depends on the
generation. So the recipes that filter by process for RL use `state`; the config's
default stays the paper's, and `--set filter.unit=trajectory` restores it in any recipe. Where the
paper's setting differs: its 27B policy's trajectories are mostly sound, so its filter dropped few
good states; a small policy's typical failure is one BAD step late in a trajectory. SFT trains on
the kept actions, so with `state` it trains only on the kept records whose own action is GOOD
(`training.data.read_states`).

Input:  run/split/*.jsonl   (SubTrajectory records)
Output: run/filter/*.jsonl  (the kept SubTrajectory records, each with a `verdict` field: the Verdict
        dict, or null when the strategy judged nothing)
Run alone: `swirl-lite filter RECIPE`. Verdicts are cached in run/judge_cache, so a rerun after a
crash, or with another strategy, re-judges nothing.

Departures: the judge may be the policy's own base weights, a small local model or the reference
judge (see `swirl_lite/judges`), and scores are graded (P(GOOD)) so the cut is a threshold.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swirl_lite.config import Recipe
from swirl_lite.console import console, progress, skips, summary_table
from swirl_lite.runs import RunDir
from swirl_lite.schema import SubTrajectory, Verdict, read_shards, to_dict, write_jsonl

SHARD_SIZE = 2000  # sub-trajectories per output shard
Outcome = Callable[[list[list[SubTrajectory]]], list[bool]]


@dataclass
class FilterResult:
    kept: list[dict]  # SubTrajectory dicts with a "verdict" field
    trajectories_in: int
    trajectories_out: int
    subs_in: int
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    judged_seconds: float = 0.0
    kinds: dict[str, str] = field(default_factory=dict)  # sub id -> action kind, for the summary
    unit: str = "trajectory"
    ending_bad: int = 0  # kept states whose own action the judge rated BAD (unit "state" only)


def grader_outcome(groups: list[list[SubTrajectory]]) -> list[bool]:
    """The task grader's verdict, recorded on every sub-trajectory by generate (METHOD.md §3)."""
    return [bool(g[0].outcome) for g in groups]


def judge_all(subs: list[SubTrajectory], scorer: Any, chunk: int = 32) -> tuple[dict[str, Verdict], float]:
    """Verdicts for every sub-trajectory, in chunks, with a progress bar; returns (verdicts, seconds)."""
    verdicts: dict[str, Verdict] = {}
    start = time.perf_counter()
    with progress(rate="{task.fields[rate]}") as bar:
        task = bar.add_task("judge", total=len(subs), rate="")
        for i in range(0, len(subs), chunk):
            batch = subs[i : i + chunk]
            for sub, verdict in zip(batch, scorer.score(batch), strict=True):
                verdicts[sub.id] = verdict
            done = min(i + chunk, len(subs))
            bar.update(task, completed=done, rate=f"{done / max(time.perf_counter() - start, 1e-9):.1f} steps/s")
    return verdicts, time.perf_counter() - start


def filter_subs(
    subs: list[SubTrajectory],
    strategy: str,
    threshold: float,
    scorer: Any = None,
    outcome: Outcome = grader_outcome,
    chunk: int = 32,
    unit: str = "trajectory",
) -> FilterResult:
    """Apply a strategy to sub-trajectories grouped by trajectory (order kept).

    `unit` (process strategies): `trajectory` keeps a trajectory's every sub-trajectory when all its
    steps are GOOD; `state` keeps each sub-trajectory whose state holds only GOOD actions, i.e. every
    earlier step of its trajectory is GOOD, whatever its own action."""
    groups: dict[str, list[SubTrajectory]] = defaultdict(list)
    for sub in subs:
        groups[sub.trajectory_id].append(sub)
    ordered = [sorted(g, key=lambda s: s.step) for g in groups.values()]
    keep = [[True] * len(g) for g in ordered]
    verdicts: dict[str, Verdict] = {}
    seconds = 0.0
    if "process" in strategy:
        if scorer is None:
            raise ValueError(f"filter.strategy {strategy!r} needs a judge")
        verdicts, seconds = judge_all([s for g in ordered for s in g], scorer, chunk)
        keep = [_process_keep([verdicts[s.id].score >= threshold for s in g], unit) for g in ordered]
    if "outcome" in strategy:
        keep = [k if ok else [False] * len(k) for k, ok in zip(keep, outcome(ordered), strict=True)]
    kept = []
    ending_bad = 0
    for group, flags in zip(ordered, keep, strict=True):
        for s, ok in zip(group, flags, strict=True):
            if ok:
                v = verdicts.get(s.id)
                ending_bad += v is not None and v.score < threshold
                kept.append({**to_dict(s), "verdict": to_dict(v) if v else None})
    kinds = {s.id: s.kind for s in subs}
    out = sum(any(flags) for flags in keep)
    return FilterResult(kept, len(ordered), out, len(subs), verdicts, seconds, kinds, unit, ending_bad)


def _process_keep(good: list[bool], unit: str) -> list[bool]:
    """Which steps of one trajectory (its verdicts in step order) the process filter keeps."""
    if unit == "trajectory":
        return [all(good)] * len(good)
    return [all(good[:i]) for i in range(len(good))]  # state s_i holds actions 0..i-1


def _outcome_fn(recipe: Recipe, run_dir: RunDir, policy: Any) -> Outcome:
    if recipe.judge.outcome == "grader":
        return grader_outcome
    from swirl_lite.judges import LLMOutcomeJudge, VerdictCache, build_engine
    from swirl_lite.tasks.common import extract_answer

    judge = LLMOutcomeJudge(build_engine(recipe, policy), recipe.judge.mode, VerdictCache(run_dir / "judge_cache"))

    def outcome(groups: list[list[SubTrajectory]]) -> list[bool]:
        items = []
        for g in groups:
            last = g[-1]  # the trajectory's final action, parsed by the rollout with the run's tags
            answer = extract_answer(str(last.completion[0]["content"])) if last.kind == "answer" else None
            gold = g[0].gold if not isinstance(g[0].gold, list) else " / ".join(map(str, g[0].gold))
            items.append((g[0].meta.get("question", ""), str(gold), answer))
        return judge.grade(items)

    return outcome


def summary_rows(result: FilterResult, strategy: str, hits: int | None) -> list[tuple]:
    pct = 100.0 * result.trajectories_out / max(result.trajectories_in, 1)
    rows: list[tuple] = [
        ("strategy", strategy),
        ("trajectories in / out", f"{result.trajectories_in} / {result.trajectories_out}"),
        ("sub-trajectories in / out", f"{result.subs_in} / {len(result.kept)}"),
        ("% trajectories kept", f"{pct:.1f}%"),
    ]
    if result.unit == "state":
        rows += [("unit", "state (earlier actions GOOD)"), ("kept states ending BAD", result.ending_bad)]
    if result.verdicts:
        by_step: dict[int, Counter] = defaultdict(Counter)
        by_kind: dict[str, Counter] = defaultdict(Counter)
        for sub_id, v in result.verdicts.items():
            step = int(sub_id.rsplit("/", 1)[1]) if "/" in sub_id else 0
            by_step[step][v.label] += 1
        for sub_id, v in result.verdicts.items():
            by_kind[result.kinds.get(sub_id, "?")][v.label] += 1

        def rate(c: Counter) -> str:
            return f"{100.0 * c['GOOD'] / max(sum(c.values()), 1):.1f}% of {sum(c.values())}"
        rows += [(f"GOOD rate, step {k}", rate(c)) for k, c in sorted(by_step.items())]
        rows += [(f"GOOD rate, {k}", rate(c)) for k, c in sorted(by_kind.items())]
        invalid = sum(v.label == "invalid" for v in result.verdicts.values())
        rows += [("invalid verdicts", invalid)]
        rows += [("judge throughput", f"{len(result.verdicts) / max(result.judged_seconds, 1e-9):.1f} steps/s")]
        if hits is not None:
            rows += [("cache hits", hits)]
    return rows


def read_subs(run_dir: RunDir) -> tuple[list[SubTrajectory], Counter]:
    """Every sub-trajectory of run/split; a record that does not parse is counted, not fatal."""
    subs: list[SubTrajectory] = []
    skipped: Counter = Counter()
    for record in read_shards(run_dir / "split"):
        try:
            subs.append(SubTrajectory.from_dict(record))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            skipped[f"unreadable sub-trajectory ({type(exc).__name__})"] += 1
    return subs, skipped


def run(recipe: Recipe, run_dir: RunDir) -> dict[str, Any]:
    """Filter run/split into run/filter per `filter.strategy`; returns the summary."""
    subs, skipped = read_subs(run_dir)
    if not subs:
        raise FileNotFoundError(f"{run_dir / 'split'}: no sub-trajectories; run `swirl-lite split` first")
    if skipped:
        console.print(f"[yellow]filter: {skips(skipped)}[/]")
    strategy = recipe.filter.strategy
    scorer = policy = None
    if "process" in strategy:
        from swirl_lite.judges import judge_for_run

        if recipe.judge.kind != "reference" and recipe.judge.model == "policy":
            from swirl_lite.models import load_model

            policy = load_model(recipe.model.model_copy(update={"adapter": None}))
        scorer = judge_for_run(recipe, run_dir, policy=policy)  # the RL reward's scorer, the same tools
    outcome = _outcome_fn(recipe, run_dir, policy) if "outcome" in strategy else grader_outcome
    result = filter_subs(subs, strategy, recipe.filter.threshold, scorer, outcome, 4 * recipe.judge.batch_size,
                         unit=recipe.filter.unit if "process" in strategy else "trajectory")
    hits = sum(getattr(s, "hits", 0) for s in (scorer, getattr(scorer, "reference", None), getattr(scorer, "llm", None)) if s)
    tmp = run_dir / f".filter.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for n, start in enumerate(range(0, max(len(result.kept), 1), SHARD_SIZE)):
        write_jsonl(tmp / f"shard-{n:05d}.jsonl", result.kept[start : start + SHARD_SIZE])
    shutil.rmtree(run_dir / "filter", ignore_errors=True)
    os.replace(tmp, run_dir / "filter")
    rows = summary_rows(result, strategy, hits if scorer else None) + [("records skipped", skips(skipped))]
    console.print(summary_table("filter", rows))
    return {
        "strategy": strategy,
        "trajectories_in": result.trajectories_in,
        "trajectories_out": result.trajectories_out,
        "sub_trajectories_out": len(result.kept),
        "unit": result.unit,
        "states_ending_bad": result.ending_bad,
        "invalid_verdicts": sum(v.label == "invalid" for v in result.verdicts.values()),
        "skipped": dict(skipped),
    }
