"""Tool registry: `build_tools(names, tools_cfg, task, examples)` -> {action tag: Tool}, and
`run_tools(recipe)`: the run's tools, as generate gives them to the policy and the judge re-runs
actions with them.

Built-in names: `calculator` (tag math_exp) and `search` (tag search_query). A user tool is named by
import path, `my_pkg.tools:MyTool`: a class instantiated with the ToolsConfig when its constructor
takes a parameter (else with no arguments), or an object that already has `name`, `tag` and
`batch`. An empty `names` list means the task's `default_tools`. What a tool is (its contract:
`description`, `judge_hint`, the stop string its tag implies) is in `tools/base.py`.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from swirl_lite.config import ToolsConfig
from swirl_lite.tools.base import Tool

if TYPE_CHECKING:
    from swirl_lite.config import Recipe
    from swirl_lite.tasks.base import Document, Example, Task


def _calculator(cfg: ToolsConfig, task: Task | None, examples: list[Example]) -> Tool:
    from swirl_lite.tools.calculator import Calculator

    return Calculator(timeout_s=cfg.calculator_timeout_s)


def search_corpus(cfg: ToolsConfig, task: Task | None, examples: list[Example]) -> list[Document]:
    """`tools.corpus` when set, else the task's per-split paragraphs (METHOD.md §1)."""
    from swirl_lite.tools.search import load_corpus

    if cfg.corpus:
        return load_corpus(cfg.corpus)
    docs = task.corpus(examples) if task is not None else []
    if not docs:
        name = getattr(task, "name", "none")
        raise ValueError(f"tools.corpus: task {name!r} has no paragraphs to search; set tools.corpus to a JSONL {{id, title, text}}")
    return docs


def _search(cfg: ToolsConfig, task: Task | None, examples: list[Example]) -> Tool:
    from swirl_lite.tools.search import SearchTool

    docs = search_corpus(cfg, task, examples)
    return SearchTool(docs, top_k=cfg.search_top_k, max_chars=cfg.search_max_chars)


TOOLS: dict[str, Callable[[ToolsConfig, Task | None, list[Example]], Tool]] = {
    "calculator": _calculator,
    "search": _search,
}

__all__ = ["TOOLS", "Tool", "build_tool", "build_tools", "run_tools", "search_corpus"]


def _from_import_path(spec: str, cfg: ToolsConfig) -> Tool:
    from swirl_lite.imports import import_object

    obj = import_object(spec, "tools.use")
    if inspect.isclass(obj):
        params = [p for p in inspect.signature(obj).parameters.values() if p.kind != p.VAR_KEYWORD]
        try:
            obj = obj(cfg) if params else obj()
        except Exception as exc:  # user code: name it, its error and where it was raised, in one line
            last = traceback.extract_tb(exc.__traceback__)[-1]
            raise ValueError(
                f"tools.use: {spec!r}: the constructor raised {type(exc).__name__}: {exc} "
                f"({last.filename}:{last.lineno})"
            ) from None
    if not isinstance(obj, Tool):
        raise ValueError(f"tools.use: {spec!r} is not a Tool (needs name, tag and batch(queries))")
    return obj


def build_tool(name: str, tools_cfg: ToolsConfig | None = None, task: Task | None = None,
               examples: list[Example] | None = None) -> Tool:
    """One tool by registry name or import path."""
    cfg = tools_cfg or ToolsConfig()
    if name in TOOLS:
        return TOOLS[name](cfg, task, list(examples or []))
    if ":" in name:
        return _from_import_path(name, cfg)
    raise ValueError(f"tools.use: unknown tool {name!r}; valid: {', '.join(TOOLS)} or package.module:Class")


def build_tools(names: list[str], tools_cfg: ToolsConfig | None = None, task: Task | None = None,
                examples: list[Example] | None = None) -> dict[str, Tool]:
    """The tools of a run keyed by the action tag they serve; `examples` feed the search corpus."""
    names = list(names) or list(getattr(task, "default_tools", ()))
    tools: dict[str, Tool] = {}
    for name in names:
        tool = build_tool(name, tools_cfg, task, examples)
        if tool.tag in tools:
            raise ValueError(f"tools.use: {name!r} and {tools[tool.tag].name!r} both serve <{tool.tag}>; keep one")
        tools[tool.tag] = tool
    return tools


def run_tools(recipe: Recipe, task: Task, examples: list[Example] | None = None) -> dict[str, Tool]:
    """The run's tools: `tools.use` (or the task's defaults) over the training split's questions
    (`examples`, loaded from `data` when not given and a tool needs them: the search corpus)."""
    names = list(recipe.tools.use) or list(task.default_tools)
    if examples is None:
        d = recipe.data
        needs_corpus = "search" in names and not recipe.tools.corpus
        examples = list({ex.id: ex for ex in task.load(d.split, d.limit, d.seed, d.shuffle)}.values()) if needs_corpus else []
    return build_tools(names, recipe.tools, task, examples)
