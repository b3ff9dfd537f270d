"""`swirl-lite tools run`: try a tool by hand.

`tools run NAME QUERY...` executes one tool and prints `QUERY -> RESULT` lines, exactly the user
turns the rollout would append (METHOD.md §1). The tools benchmark is `swirl-lite bench tools`
(`bench/`). Only click is imported at module level, so the CLI stays instant; everything else
loads inside the command.
"""

from __future__ import annotations

import sys

import click

from swirl_lite.cli_helpers import fail, load_or_exit


@click.group(name="tools")
def tools_group() -> None:
    """Run the calculator or search tool by hand."""


@tools_group.command(name="run")
@click.argument("name")
@click.argument("queries", nargs=-1)
@click.option("--recipe", type=click.Path(dir_okay=False), help="Take the tools config and corpus from this recipe.")
@click.option("--set", "overrides", multiple=True, help="Override a recipe value, e.g. --set tools.search_top_k=3.")
@click.option("--corpus", type=click.Path(dir_okay=False), help="JSONL corpus {id, title, text} for search.")
@click.option("--top-k", type=int, help="Paragraphs per search.")
def tools_run(name: str, queries: tuple[str, ...], recipe: str | None, overrides: tuple[str, ...],
              corpus: str | None, top_k: int | None) -> None:
    """Run tool NAME (calculator, search or pkg.module:Class) on each QUERY (or stdin lines).

    Example: swirl-lite tools run calculator "48 / 2" "12.5% of 80"
    """
    from swirl_lite.actions import format_result
    from swirl_lite.console import console
    from swirl_lite.tools import build_tool

    resolved = load_or_exit(recipe, overrides)
    cfg = resolved.tools
    if corpus:
        cfg = cfg.model_copy(update={"corpus": corpus})
    if top_k:
        cfg = cfg.model_copy(update={"search_top_k": top_k})
    task, examples = None, []
    try:
        if recipe is not None and name == "search" and not cfg.corpus:
            from swirl_lite.tasks import get_task

            data = resolved.data
            task = get_task(data)
            examples = task.load(data.split, limit=data.limit, seed=data.seed, shuffle=data.shuffle)
        elif name == "search" and not cfg.corpus:
            fail("search needs a corpus: pass --corpus FILE.jsonl or --recipe RECIPE")
        tool = build_tool(name, cfg, task, examples)
    except (ValueError, FileNotFoundError) as exc:
        fail(exc)
    lines = list(queries) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for query, result in zip(lines, tool.batch(lines), strict=True):
        console.print(format_result(query, result), markup=False, highlight=False, soft_wrap=True)

