"""Evaluate stage: greedy multi-step rollouts of the base model and every trained adapter, graded.

Input: the recipe; trained adapters under `run_dir/train` (`train/adapter`, or `train/<name>/` and
`train/<name>/adapter/` folders holding an `adapter_config.json`), plus `eval.adapters` (the CLI's
`--adapter PATH`). Questions: a seeded random subset of `eval.n_questions` from `eval.split` of each
task in `eval.tasks` (default: the training task), so several tasks give the paper's cross-task table.
Output: `run_dir/evaluate/<model>/<task>.jsonl` (graded trajectories, one file per finished (model,
task) pair, so a rerun skips what is done; an unfinished pair keeps its finished questions in
`.<task>.partial.jsonl` and resumes from them), then `metrics.json`, `report.md`, `report.html` (see
`swirl_lite/report.py`), and the headline table in the terminal.
Run alone: `swirl-lite evaluate RECIPE [--adapter PATH]`.

Same loop as generation (METHOD.md §5): the rollout engine, temperature 0, the task's step cap
(or `eval.max_steps`), one trajectory per question. Departures: gold grading (numeric match for
math, EM/F1 for QA) is the headline instead of the paper's LLM judge (METHOD.md §6); the LLM
grade (`eval.llm_grader`) and the judge's GOOD rate per step (`eval.judge_steps`) are optional extras.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from swirl_lite.backends import demonstrations_for, load_llm
from swirl_lite.config import DataConfig, Recipe
from swirl_lite.console import console, progress, skips, summary_table
from swirl_lite.memory import release
from swirl_lite.runs import RunDir
from swirl_lite.schema import Trajectory, read_jsonl, to_dict, write_jsonl

BASE = "base"


def find_models(recipe: Recipe, run_dir: RunDir) -> list[tuple[str, str | None]]:
    """(name, adapter folder or None) for the base model and each adapter to evaluate."""
    models: list[tuple[str, str | None]] = [(BASE, None)]
    if recipe.model.adapter:  # an adapter the recipe starts from is a model of its own, not the base
        models.append((_adapter_name(Path(recipe.model.adapter)), recipe.model.adapter))
    train = Path(run_dir / "train")
    found: list[Path] = []
    if train.is_dir():
        found = sorted(p.parent for p in train.glob("adapter_config.json"))
        found += sorted(p.parent for p in train.glob("*/adapter_config.json"))
        found += sorted(p.parent for p in train.glob("*/adapter/adapter_config.json"))
    for folder in found:
        if folder.name.startswith(("checkpoint-", ".")):
            continue  # intermediate checkpoints and unfinished (temporary) folders
        if folder == train or folder == train / "adapter":
            name = recipe.train.method
        else:
            name = _adapter_name(folder)
        models.append((name, str(folder)))
    for path in recipe.eval.adapters:
        folder = Path(path)
        if not (folder / "adapter_config.json").is_file():
            raise FileNotFoundError(f"eval.adapters: {path} is not a LoRA adapter folder (no adapter_config.json)")
        models.append((_adapter_name(folder), str(folder)))
    return _unique_names(models)


def _adapter_name(folder: Path) -> str:
    return folder.parent.name if folder.name == "adapter" else folder.name


def _unique_names(models: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    seen_paths: set[str] = set()
    names: dict[str, int] = {}
    out = []
    for name, path in models:
        key = str(Path(path).resolve()) if path else ""
        if path and key in seen_paths:
            continue  # the same adapter found twice (train dir and --adapter)
        seen_paths.add(key)
        names[name] = names.get(name, 0) + 1
        out.append((name if names[name] == 1 else f"{name}-{names[name]}", path))
    return out


def task_config(recipe: Recipe, name: str) -> DataConfig:
    """The training task's data config (with `eval.path` when set), or another task's (cross-task
    eval): its `eval.task_paths` entry, else its hub default."""
    if name != recipe.data.task:
        return DataConfig(task=name, seed=recipe.data.seed, path=recipe.eval.task_paths.get(name))
    if recipe.eval.path:
        return recipe.data.model_copy(update={"path": recipe.eval.path})
    warning = training_file_warning(recipe)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}")
    return recipe.data


def training_file_warning(recipe: Recipe) -> str | None:
    """Why evaluating the training task would ask the training questions (data.path is one local
    file, eval.path unset), or None; a folder has its own test split file."""
    from swirl_lite.tasks.loading import looks_local

    path = recipe.data.path
    if recipe.eval.path or not path or not looks_local(path) or Path(path).is_dir():
        return None
    return (f"data.path {path} is one local file, so evaluation reads the training questions; "
            "set eval.path to a held-out file")


def result_path(run_dir: RunDir, model: str, task: str) -> Path:
    return Path(run_dir / "evaluate") / model / f"{task}.jsonl"


def prepare(recipe: Recipe, task_name: str):
    """(task, eval examples, tools) for one eval task; other tasks get their own default tools."""
    from swirl_lite.tasks import get_task
    from swirl_lite.tools import build_tools

    task = get_task(task_config(recipe, task_name))
    examples = task.load(recipe.eval.split, limit=recipe.eval.n_questions, seed=recipe.eval.seed, shuffle=True)
    if task.skipped:
        console.print(f"[yellow]evaluate: {task_name}: {skips(task.skip_reasons)}[/]")
    if not examples:
        raise ValueError(f"eval: task {task_name!r} split {recipe.eval.split!r} has no usable questions")
    if task_name == recipe.data.task:
        tools = build_tools(list(recipe.tools.use), recipe.tools, task, examples)
    else:  # cross-task: the tested task's own tools and corpus, not the training task's
        tools = build_tools([], recipe.tools.model_copy(update={"corpus": None}), task, examples)
    return task, examples, tools


def evaluate_task(
    recipe: Recipe, llm, task, examples: list, tools: dict, label: str, demos: int = 0, partial: Path | None = None
) -> list[Trajectory]:
    """Greedy rollouts of `llm` on `examples`, graded by the task, returned in question order.

    Each finished trajectory is appended to `partial` at once, so a killed run resumes mid-task:
    questions found there are not asked again.
    """
    from swirl_lite.backends import SamplingParams
    from swirl_lite.rollout import rollout

    params = SamplingParams(
        temperature=0.0, top_p=1.0, max_new_tokens=recipe.generate.max_new_tokens, seed=recipe.eval.seed
    )
    wanted = {ex.id for ex in examples}
    done = {t.question_id: t for t in read_partial(partial) if t.question_id in wanted} if partial else {}
    todo = [(ex, 0) for ex in examples if ex.id not in done]
    if done:
        console.print(f"evaluate: {label}: resuming, {len(done)} of {len(examples)} questions already answered")
    with progress() as bar, _appender(partial) as sink:
        handle = bar.add_task(label, total=len(examples), completed=len(done))
        for traj in rollout(
            llm, task, tools, todo,
            max_steps=recipe.eval.max_steps or task.max_steps,
            batch_size=recipe.eval.batch_size,
            params=params,
            demonstrations=demos,
            max_malformed_in_a_row=recipe.generate.max_malformed_in_a_row,
        ):
            done[traj.question_id] = traj
            sink(traj)
            bar.advance(handle)
    return [done[ex.id] for ex in examples if ex.id in done]


def read_partial(path: Path) -> list[Trajectory]:
    """Trajectories of an interrupted run; a line torn by the kill is dropped (it is redone)."""
    return [Trajectory.from_dict(d) for d in read_jsonl(path, skip_bad=True)] if path.is_file() else []


@contextlib.contextmanager
def _appender(path: Path | None):
    if path is None:
        yield lambda traj: None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        def sink(traj: Trajectory) -> None:
            fh.write(json.dumps(to_dict(traj), ensure_ascii=False) + "\n")
            fh.flush()

        yield sink


def run(recipe: Recipe, run_dir: RunDir) -> dict:
    from swirl_lite.report import TERMINAL_COLUMNS, compute_metrics, terminal_rows, write_report

    tasks = recipe.eval.tasks or [recipe.data.task]
    models = find_models(recipe, run_dir)
    skipped: dict[str, dict[str, int]] = {}  # task -> reason -> eval rows skipped
    for name, adapter in models:
        pending = [t for t in tasks if not result_path(run_dir, name, t).exists()]
        if not pending:
            console.print(f"[dim]evaluate: {name} finished earlier on {', '.join(tasks)}[/]")
            continue
        llm, loaded = load_llm(recipe, adapter)
        engines: dict = {}  # judge engine(s) for the extras, built once per model
        for task_name in pending:
            task, examples, tools = prepare(recipe, task_name)
            skipped[task_name] = dict(getattr(task, "skip_reasons", None) or {})
            demos = demonstrations_for(recipe, llm)  # the prompt the model was trained on
            final = result_path(run_dir, name, task_name)
            partial = final.with_name(f".{final.stem}.partial.jsonl")
            trajs = evaluate_task(recipe, llm, task, examples, tools, f"{name} / {task_name}", demos, partial)
            judge_extras(recipe, run_dir, loaded, task, tools, trajs, engines)
            write_jsonl(final, trajs)
            partial.unlink(missing_ok=True)
        release(llm)  # closes a vllm engine
        del llm, loaded, engines
        release()
    metrics = write_report(run_dir.path, compute_metrics(run_dir.path, seed=recipe.eval.seed))
    console.print(summary_table("evaluation (95% CI: Wilson)", terminal_rows(metrics), TERMINAL_COLUMNS))
    console.print(f"report: {run_dir / 'report.md'}  report.html  metrics.json")
    return {
        "models": [m for m, _ in models],
        "tasks": tasks,
        "accuracy": {f"{r['model']}/{r['task']}": round(r["accuracy"], 4) for r in metrics["results"]},
        "skipped": skipped,
    }




def judge_extras(
    recipe: Recipe, run_dir: RunDir, loaded, task, tools: dict, trajs: list[Trajectory], engines: dict | None = None
) -> None:
    """The optional judge columns, stored in each trajectory's meta for the report:
    `llm_correct` (eval.llm_grader: partial-match YES/NO against gold) and `step_good` (eval.judge_steps:
    one bool per step, score >= filter.threshold, the paper's Table 3 "reasonable steps")."""
    if not (recipe.eval.llm_grader or recipe.eval.judge_steps):
        return
    from swirl_lite.judges import LLMOutcomeJudge, VerdictCache, build_engine, judge_for_run
    from swirl_lite.schema import split_trajectory

    needs_llm = recipe.eval.llm_grader or recipe.judge.kind != "reference"
    # judge.model 'policy' judges with the base weights: the engine switches the adapter off.
    engines = engines if engines is not None else {}
    if needs_llm and "llm" not in engines:
        engines["llm"] = build_engine(recipe, loaded)
    engine = engines.get("llm")
    if recipe.eval.llm_grader:
        grader = LLMOutcomeJudge(engine, recipe.judge.mode, VerdictCache(run_dir / "judge_cache"))
        verdicts = grader.grade([(t.question, str(t.gold), t.final_answer) for t in trajs])
        for traj, ok in zip(trajs, verdicts, strict=True):
            traj.meta["llm_correct"] = bool(ok)
    if recipe.eval.judge_steps:
        scorer = judge_for_run(recipe, run_dir, policy=loaded, tools=tools, task=task, engine=engine)
        subs = [sub for t in trajs for sub in split_trajectory(t)]
        good: dict[str, list[bool]] = {}
        for sub, verdict in zip(subs, scorer.score(subs), strict=True):
            good.setdefault(sub.trajectory_id, []).append(verdict.score >= recipe.filter.threshold)
        for traj in trajs:
            traj.meta["step_good"] = good.get(traj.id, [])
