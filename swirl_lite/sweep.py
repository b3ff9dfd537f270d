"""`swirl-lite sweep`: one recipe over several training seeds and settings, on one generation.

    swirl-lite sweep recipes/learn-cpu.yaml --seeds 0,1,2 --set eval.seed=1 \
      --variant "none: filter.strategy=none" \
      --variant "process-state: filter.strategy=process filter.unit=state"

A learning claim from one training run is one draw: the same recipe's gain moved from +31 to +19
points between two reruns here. This runs every (variant, seed) as its own run directory,
`output.dir/<name>-<variant>-s<seed>`, with `train.seed` set to the seed, and ends with each run's
gain over the base model (points, McNemar p) and each variant's mean and range over the seeds.

What is shared, not redone: the first run generates and splits; every later run whose generation
settings are the same starts from a copy of those stages' output (and their manifest entries), and
from a copy of the base model's evaluation when the settings it depends on are the same (model,
data, tools, generate, eval), so each further run costs its filter, training and the trained
model's evaluation. A variant that changes a generation setting generates its own. The copies come
from any run of the recipe in `output.dir` (`<name>-*`), not only this sweep's: a later sweep (more
seeds, another variant) or one started beside it (`OMP_NUM_THREADS=1`, one per core) reuses what
another finished. Only finished stages are copied (the manifest says so; a base evaluation still
running has only its hidden partial file). An interrupted sweep resumes: every run resumes as
`swirl-lite run` does, and copies are made only into runs that lack them. The table is also
written to `output.dir/<name>-sweep.json`, which keeps the runs other sweeps recorded there.
"""

from __future__ import annotations

import copy
import json
import shutil
import statistics
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from swirl_lite.config import (
    Recipe,
    RecipeError,
    apply_overrides,
    build_recipe,
    load_recipe,
    parse_override,
)
from swirl_lite.console import console, summary_table
from swirl_lite.pipeline import run_pipeline, stage_inputs
from swirl_lite.runs import MANIFEST, RunDir, write_text_atomic

SHARED = ("generate", "split")  # stages whose output later runs copy
BASE = "base"


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...]


def parse_variant(text: str) -> Variant:
    """`NAME: key=value key=value` (or just `NAME:` for the recipe as it is)."""
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not sep or not name or not name.replace("-", "").replace("_", "").isalnum():
        raise RecipeError([f"--variant {text!r}: write NAME: key=value ..., NAME of letters, digits, - or _"])
    overrides = tuple(rest.split())
    for item in overrides:
        if "=" not in item:
            raise RecipeError([f"--variant {name}: {item!r} is not key=value"])
        parse_override(item)
    return Variant(name, overrides)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise RecipeError([f"--seeds {text!r}: write distinct integers separated by commas, e.g. 0,1,2"])
    return seeds


def plan_runs(recipe: Recipe, variants: list[Variant], seeds: list[int]) -> list[tuple[str, int, Recipe]]:
    """(variant name, seed, recipe) for every run, named `<name>-<variant>-s<seed>`."""
    base = recipe.model_dump(mode="json")
    runs = []
    for variant in variants or [Variant("recipe", ())]:
        for seed in seeds:
            sets = [*variant.overrides, f"train.seed={seed}",
                    f"output.name={recipe.run_name}-{variant.name}-s{seed}"]
            runs.append((variant.name, seed, build_recipe(apply_overrides(copy.deepcopy(base), sets),
                                                          f"--variant {variant.name}")))
    return runs


def _base_eval_inputs(recipe: Recipe) -> dict:
    """What the base model's evaluation depends on: generation's settings and the eval section."""
    dumped = recipe.model_dump(mode="json")
    return {**stage_inputs("generate", recipe), **{f"eval.{k}": v for k, v in dumped["eval"].items()}}


def reusable(source: RunDir, recipe: Recipe) -> dict[str, dict]:
    """The shared stages `source` finished with `recipe`'s settings, in order, up to the first
    that it did not (later stages depend on that one): stage -> its manifest entry."""
    done = source.manifest()["stages"]
    stages = {}
    for stage in SHARED:
        if stage not in done or stage_inputs(stage, recipe) != done[stage].get("inputs"):
            break
        stages[stage] = done[stage]
    return stages


def seed_from(source: RunDir, target: RunDir, recipe: Recipe) -> list[str]:
    """Copy the shared stages from `source` into `target` where their settings match and `target`
    lacks them; returns what was copied."""
    copied = []
    for stage, done in reusable(source, recipe).items():
        if target.is_done(stage):
            break  # later stages depend on this one: copy none of them
        if (target / stage).exists():
            shutil.rmtree(target / stage)  # a partial output of its own, from a crash: the copy is whole
        shutil.copytree(source / stage, target / stage)
        entry = {k: v for k, v in done.items() if k != "finished_at"}
        target.mark_done(stage, {**entry, "copied_from": source.path.name})
        copied.append(stage)
    return copied


def copy_base_evaluation(source: RunDir, source_recipe: Recipe, target: RunDir, recipe: Recipe) -> bool:
    """The base model's graded trajectories from `source` into `target`, when the settings they
    depend on match and `target` has none (its evaluate stage then skips the base model)."""
    base = Path(source / "evaluate") / BASE
    mine = Path(target / "evaluate") / BASE
    if base.is_dir() and not mine.exists() and _base_eval_inputs(recipe) == _base_eval_inputs(source_recipe):
        files = [f for f in base.glob("*.jsonl") if not f.name.startswith(".")]
        if files:
            mine.mkdir(parents=True)
            for f in files:
                shutil.copy2(f, mine / f.name)
            return True
    return False


def outcome(run: RunDir, task: str) -> dict | None:
    """The trained model against the base on the training task, from the run's metrics.json."""
    try:
        metrics = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    rows = {(r["model"], r["task"]): r for r in metrics.get("results", [])}
    for c in metrics.get("comparisons", []):
        if c["task"] == task and (BASE, task) in rows and (c["model"], task) in rows:
            base, trained = rows[BASE, task], rows[c["model"], task]
            return {"base": f"{base['correct']}/{base['n']}", "trained": f"{trained['correct']}/{trained['n']}",
                    "gain_pts": round(100 * c["accuracy_diff"], 1), "mcnemar_p": c["mcnemar_p"], "model": c["model"]}
    return None


def other_runs(recipe: Recipe, target: RunDir) -> list[tuple[RunDir, Recipe]]:
    """The recipe's other runs in `output.dir` (`<name>-*` with a manifest and a readable recipe),
    by name: this sweep's earlier runs, an earlier sweep's, one running beside it."""
    runs = []
    for path in sorted(Path(recipe.output.dir).expanduser().glob(f"{recipe.run_name}-*")):
        if path.resolve() == target.path.resolve() or not (path / MANIFEST).is_file():
            continue
        try:
            runs.append((RunDir(path), load_recipe(path / "recipe.yaml")))
        except (OSError, ValueError, RecipeError):  # half-written or foreign: not a source
            continue
    return runs


def seed_from_any(recipe: Recipe, target: RunDir, run_recipe: Recipe) -> tuple[list[str], str | None]:
    """Copy the shared stages from the other run that has the most of them finished with this
    run's settings; returns (what was copied, from which run)."""
    counts = [(len(reusable(run, run_recipe)), run) for run, _ in other_runs(recipe, target)]
    most, best = max(counts, key=lambda c: c[0], default=(0, None))
    if not most:
        return [], None
    return seed_from(best, target, run_recipe), best.path.name


def copy_any_base_evaluation(recipe: Recipe, target: RunDir, run_recipe: Recipe) -> str | None:
    """`copy_base_evaluation` from the first other run that has a finished one with the same
    settings; returns its name."""
    for run, other in other_runs(recipe, target):
        if copy_base_evaluation(run, other, target, run_recipe):
            return run.path.name
    return None


def sweep(recipe: Recipe, variants: list[Variant], seeds: list[int], lock: bool = True) -> dict:
    """Run every (variant, seed); print and return the table."""
    runs = plan_runs(recipe, variants, seeds)
    results = []
    for n, (variant, seed, run_recipe) in enumerate(runs, 1):
        run = RunDir.for_recipe(run_recipe, lock=lock)
        try:
            console.rule(f"[bold]sweep {n}/{len(runs)}: {variant}, train.seed {seed} ({run.path.name})")
            copied, source = seed_from_any(recipe, run, run_recipe)
            if copied:
                console.print(f"[dim]sweep: {', '.join(copied)} copied from {source}[/]")

            def before(stage: str, run=run, run_recipe=run_recipe) -> None:
                # just before evaluate runs: a redo of it would delete an earlier copy
                if stage == "evaluate" and (source := copy_any_base_evaluation(recipe, run, run_recipe)):
                    console.print(f"[dim]sweep: base model's evaluation copied from {source}[/]")
            run_pipeline(run_recipe, run, before=before)
        finally:
            if lock:
                run.unlock()
        results.append({"variant": variant, "seed": seed, "run": run.path.name,
                        **(outcome(run, run_recipe.data.task) or {})})
    table = {"recipe": recipe.run_name, "task": recipe.data.task, "runs": results, "variants": summarize(results)}
    out = Path(recipe.output.dir) / f"{recipe.run_name}-sweep.json"
    kept = write_merged(out, table)
    print_table(table)
    console.print(f"sweep: {out}" + (f" (also holds {kept} run(s) of other sweeps)" if kept else ""))
    return table


def write_merged(out: Path, table: dict) -> int:
    """Write `table` to `out`, keeping the runs of other sweeps already recorded there (several
    sweeps share one output.dir, e.g. one per core): this sweep's runs replace their own earlier
    entries, the variants' summary covers them all. Returns how many other runs were kept."""
    with _exclusive(out.with_name(f".{out.name}.lock")):
        try:
            earlier = json.loads(out.read_text(encoding="utf-8")).get("runs", [])
        except (OSError, ValueError, AttributeError):
            earlier = []  # none yet, or unreadable: this sweep's runs are still all on disk
        mine = {r["run"] for r in table["runs"]}
        others = [r for r in earlier if isinstance(r, dict) and r.get("run") not in mine and "variant" in r]
        runs = others + table["runs"]
        write_text_atomic(out, json.dumps({**table, "runs": runs, "variants": summarize(runs)}, indent=2))
    return len(others)


@contextmanager
def _exclusive(lock: Path):
    """Hold an exclusive lock on `lock` (POSIX flock; elsewhere nothing), so two sweeps finishing
    together do not each write the file without the other's runs."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def summarize(results: list[dict]) -> list[dict]:
    """Per variant: mean gain in points over its seeds, the range, and how many seeds gained, and
    how many lost, significantly (McNemar p < 0.05): a significant loss is not a success."""
    out = []
    for variant in dict.fromkeys(r["variant"] for r in results):
        gains = [r for r in results if r["variant"] == variant and "gain_pts" in r]
        if not gains:
            continue
        points = [r["gain_pts"] for r in gains]
        out.append({"variant": variant, "seeds": len(gains), "mean_gain_pts": round(statistics.mean(points), 1),
                    "min_gain_pts": min(points), "max_gain_pts": max(points),
                    "significant_gains": sum(r["mcnemar_p"] < 0.05 and r["gain_pts"] > 0 for r in gains),
                    "significant_losses": sum(r["mcnemar_p"] < 0.05 and r["gain_pts"] < 0 for r in gains)})
    return out


def print_table(table: dict) -> None:
    rows = [(r["variant"], r["seed"], r.get("base", "-"), r.get("trained", "-"),
             f"{r['gain_pts']:+.1f}" if "gain_pts" in r else "-",
             f"{r['mcnemar_p']:.2g}" if "mcnemar_p" in r else "-") for r in table["runs"]]
    console.print(summary_table(f"sweep: {table['recipe']} on {table['task']}", rows,
                                ("variant", "seed", "base", "trained", "gain (pts)", "McNemar p")))
    rows = [(v["variant"], v["seeds"], f"{v['mean_gain_pts']:+.1f}",
             f"{v['min_gain_pts']:+.1f} .. {v['max_gain_pts']:+.1f}",
             f"{v['significant_gains']}/{v['seeds']}", f"{v['significant_losses']}/{v['seeds']}")
            for v in table["variants"]]
    console.print(summary_table("sweep: over seeds (p: McNemar < 0.05)", rows,
                                ("variant", "seeds", "mean gain", "range", "p gain", "p loss")))
