"""Click commands for the tools: `swirl-lite tools run` and `swirl-lite bench tools`.

`tools run NAME QUERY...` executes one tool by hand and prints `QUERY -> RESULT` lines, exactly the
user turns the rollout would append (METHOD.md §1). `bench tools` prints calculator calls/s, BM25
index build/load time and queries/s (single vs batched), and with `--hotpotqa FILE` the recall of
supporting paragraphs with the question as query. Only click is imported at module level, so the
CLI stays instant; everything else loads inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _fail(message: str) -> None:
    from swirl_lite.console import error

    error(message.splitlines()[0] if message else "failed")
    sys.exit(1)


def _recipe(path: str | None, overrides: tuple[str, ...]):
    from swirl_lite.config import Recipe, RecipeError, load_recipe

    if path is None:
        return Recipe()
    try:
        return load_recipe(path, overrides)
    except RecipeError as exc:
        _fail(str(exc))


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

    resolved = _recipe(recipe, overrides)
    cfg = resolved.tools
    if corpus:
        cfg = cfg.model_copy(update={"corpus": corpus})
    if top_k is not None:  # through the schema, so its range (1-20) holds here too
        from pydantic import ValidationError

        try:
            cfg = cfg.model_validate({**cfg.model_dump(), "search_top_k": top_k})
        except ValidationError as exc:
            raise click.BadParameter(exc.errors()[0]["msg"], param_hint="--top-k") from None
    task, examples = None, []
    try:
        if recipe is not None and name == "search" and not cfg.corpus:
            from swirl_lite.tasks import get_task

            data = resolved.data
            task = get_task(data)
            examples = task.load(data.split, limit=data.limit, seed=data.seed, shuffle=data.shuffle)
        elif name == "search" and not cfg.corpus:
            _fail("search needs a corpus: pass --corpus FILE.jsonl or --recipe RECIPE")
        tool = build_tool(name, cfg, task, examples)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    lines = list(queries) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for query, result in zip(lines, tool.batch(lines), strict=True):
        console.print(format_result(query, result), markup=False, highlight=False, soft_wrap=True)


@click.command(name="tools")
@click.option("--hotpotqa", "hotpotqa_path", type=click.Path(exists=True, dir_okay=False),
              help="HotpotQA file (original or hub layout): measure recall@1/@5 of supporting paragraphs.")
@click.option("--recipe", type=click.Path(dir_okay=False), help="Benchmark search on this recipe's data.")
@click.option("--docs", "n_docs", default=5000, show_default=True, help="Synthetic corpus size (no --recipe/--hotpotqa).")
@click.option("--queries", "n_queries", default=1000, show_default=True, help="Queries timed per mode.")
@click.option("--calls", "n_calls", default=5000, show_default=True, help="Calculator expressions timed per mode.")
def bench_tools(hotpotqa_path: str | None, recipe: str | None, n_docs: int, n_queries: int, n_calls: int) -> None:
    """Calls/s of each tool, single vs batched, and BM25 index build time."""
    from swirl_lite.console import console, summary_table
    from swirl_lite.tools import bench

    calc = bench.bench_calculator(n_calls)
    console.print(summary_table("calculator", [
        ("expressions", calc["calls"]),
        ("single calls/s", calc["single_per_s"]),
        ("batched calls/s", calc["batched_per_s"]),
    ]))

    source, examples, docs = "synthetic", [], []
    if hotpotqa_path or recipe:
        from swirl_lite.config import DataConfig
        from swirl_lite.tasks import get_task

        data = DataConfig(task="hotpotqa", path=hotpotqa_path) if hotpotqa_path else _recipe(recipe, ()).data
        try:
            task = get_task(data)
            examples = task.load(data.split, limit=data.limit, seed=data.seed, shuffle=data.shuffle)
            docs = task.corpus(examples)
        except (ValueError, FileNotFoundError) as exc:
            _fail(str(exc))
        queries = [ex.question for ex in examples]
        source = hotpotqa_path or recipe
    if not examples or not docs:
        docs, queries = bench.synthetic_corpus(n_docs)
    queries = (queries * (n_queries // max(len(queries), 1) + 1))[:n_queries]
    s = bench.bench_search(docs, queries)
    console.print(summary_table("search (BM25, top-1)", [
        ("corpus", Path(source).name if source != "synthetic" else "synthetic"),
        ("documents", s["docs"]),
        ("index build s", s["build_s"]),
        ("cached index load s", s["cached_load_s"]),
        ("queries timed", s["queries"]),
        ("single queries/s", s["single_per_s"]),
        ("batched queries/s", s["batched_per_s"]),
    ]))
    if docs and any(p.get("supporting") for ex in examples for p in ex.meta.get("paragraphs", ())):
        rec = bench.hotpotqa_recall(examples, docs)
        console.print(summary_table("supporting-paragraph retrieval (question as query)", [
            ("questions", rec["questions"]),
            ("hit@1 (a supporting paragraph is the top result)", rec["hit@1"]),
            ("hit@5", rec["hit@5"]),
            ("recall@1 (share of supporting paragraphs found)", rec["recall@1"]),
            ("recall@5", rec["recall@5"]),
        ]))
