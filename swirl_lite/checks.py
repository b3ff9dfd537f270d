"""What `swirl-lite validate` checks beyond the schema, without loading a model or downloading data.

`review(recipe)` returns, first, one line per problem that `generate` (or a later stage) would
otherwise meet only after loading a model: the task and its grader, the tools (a name that is not
built in, a module that does not import, a class without `batch`), local files the recipe names
(data, eval questions, search corpus, model and adapter folders), local question files with no
usable question, and the run path (one folder inside `output.dir`, not someone else's existing
folder); then notes: how many questions the local files give and how many rows the stages will
skip, by reason, and what could not be checked offline (a hub dataset or model that will be
downloaded).
"""

from __future__ import annotations

import inspect
from pathlib import Path

from swirl_lite.config import Recipe


def _task(recipe: Recipe, problems: list[str]):
    from swirl_lite.tasks import get_task
    from swirl_lite.tasks.loading import looks_local

    data = recipe.data
    if data.task == "custom" and data.path and not looks_local(data.path) and data.kind == "auto":
        data = data.model_copy(update={"kind": "qa"})  # `auto` would peek at the rows: a download
    try:
        return get_task(data)
    except (ValueError, ImportError, OSError) as exc:
        problems.append(str(exc).splitlines()[0])
        return None


def _tool(name: str) -> str | None:
    from swirl_lite.imports import import_object
    from swirl_lite.tools import TOOLS
    from swirl_lite.tools.base import Tool

    if name in TOOLS:
        return None
    if ":" not in name:
        return f"tools.use: unknown tool {name!r}; valid: {', '.join(TOOLS)} or package.module:Class"
    try:
        obj = import_object(name, "tools.use")
    except ValueError as exc:
        return str(exc)
    if inspect.isclass(obj):
        if not callable(getattr(obj, "batch", None)):
            return f"tools.use: {name!r} has no batch(queries) method; a tool needs name, tag and batch"
        return None
    if not isinstance(obj, Tool):
        return f"tools.use: {name!r} is not a Tool (needs name, tag and batch(queries))"
    return None


def _local_files(recipe: Recipe, task) -> list[str]:
    from swirl_lite.tasks.loading import looks_local

    problems = []
    data_path = recipe.data.path
    for key, path in (("data.path", data_path), ("eval.path", recipe.eval.path)):
        if path and looks_local(path) and not Path(path).expanduser().exists():
            problems.append(f"{key}: no such file or folder {path!r}")
    if recipe.tools.corpus and not Path(recipe.tools.corpus).expanduser().is_file():
        problems.append(f"tools.corpus: no such file {recipe.tools.corpus!r}")
    for key, path in (("model.name", recipe.model.name), ("judge.model", recipe.judge.model)):
        if path.startswith(("/", "./", "../", "~")) and not Path(path).expanduser().exists():
            problems.append(f"{key}: no such folder {path!r}")
    adapters = [("model.adapter", recipe.model.adapter)] + [("eval.adapters", a) for a in recipe.eval.adapters]
    for key, path in adapters:
        if path and not (Path(path).expanduser() / "adapter_config.json").is_file():
            problems.append(f"{key}: {path!r} is not a LoRA adapter folder (no adapter_config.json)")
    return problems


def review(recipe: Recipe) -> tuple[list[str], list[str]]:
    """`validate`'s (problems, notes). Problems: every one found without a model or a download, one
    line each (none: looks runnable). Notes: what the local question files give (each file read
    once) and what could not be checked offline."""
    from swirl_lite.runs import RunDirError, run_path

    problems: list[str] = []
    task = _task(recipe, problems)
    names = list(recipe.tools.use) or list(getattr(task, "default_tools", ()))
    problems += [p for p in (_tool(n) for n in names) if p]
    problems += _local_files(recipe, task)
    questions = _questions(recipe, task) if task is not None and not problems else []
    problems += [line for line, usable in questions if not usable]
    try:
        run_path(recipe)
    except RunDirError as exc:
        problems.append(str(exc))
    return problems, [line for line, usable in questions if usable] + _offline_notes(recipe)


def _offline_notes(recipe: Recipe) -> list[str]:
    """What validate could not check offline."""
    from swirl_lite.tasks import TASKS
    from swirl_lite.tasks.loading import looks_local

    out = []
    cls = TASKS.get(recipe.data.task)
    source = recipe.data.path or getattr(cls, "hub_path", None)
    if source and not looks_local(source):
        out.append(f"data: {source!r} is a hub dataset, downloaded when a stage first reads it (not checked)")
    name = recipe.model.name
    if name != "embedded" and not looks_local(name) and not Path(name).exists():
        out.append(f"model.name: {name!r} is a hub model, downloaded when first loaded (not checked)")
    return out


def _questions(recipe: Recipe, task) -> list[tuple[str, bool]]:
    """Read the local question files as generate and evaluate will (same files, split, limit and
    seed): one line per file with the questions it gives and the rows it skips, and whether any is
    usable. Hub datasets (a download) are not read here."""
    from swirl_lite.console import skips
    from swirl_lite.stages.evaluate import task_config, training_file_warning
    from swirl_lite.tasks import get_task
    from swirl_lite.tasks.loading import looks_local

    data, ev = recipe.data, recipe.eval  # a generated task has no path (the recipe check refuses one)
    reads = []
    if data.path and looks_local(data.path):
        reads.append(("data", task, data.split, data.limit, data.seed, data.shuffle))
    evaluated = data.task in (ev.tasks or [data.task])
    same_rows = training_file_warning(recipe) if evaluated else None
    if evaluated and same_rows is None:
        source = task_config(recipe, data.task)  # eval.path, else data.path (a folder's test split)
        if source.path and looks_local(source.path):
            reads.append(("eval", get_task(source) if ev.path else task, ev.split, ev.n_questions, ev.seed, True))
    lines: list[tuple[str, bool]] = []
    for key, t, split, limit, seed, shuffle in reads:
        try:
            examples = t.load(split, limit, seed, shuffle)
        except (ValueError, OSError, KeyError) as exc:
            message = str(exc).splitlines()[0]
            lines.append((message if message.startswith(("data.", "eval.")) else f"{key}: {message}", False))
            continue
        where = f"{t.source()} split {split!r}"
        skipped = f"; {skips(t.skip_reasons)}" if t.skipped else ""
        n = len(examples)
        if n:
            lines.append((f"{key}: {n} question{'s' * (n != 1)} from {where}{skipped}", True))
        else:
            lines.append((f"{key}: no usable question in {where}{skipped}", False))
    if same_rows:
        lines.append((f"eval: {same_rows}", True))
    return lines
