"""Speed and quality numbers for the tools: calculator calls/s, BM25 build time, queries/s, recall.

`swirl-lite bench tools` prints these (see `bench/cli.py`). METHOD.md §1 requires that tools never
throttle generation; these numbers show how far from that we are. `hotpotqa_recall` measures what
the paper's search returns in spirit: is a gold supporting paragraph among the top k when the
question itself is the query?
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable

from swirl_lite.tasks.base import Document, Example

_OPS = ("+", "-", "*", "/")
_WORDS = [f"w{i}" for i in range(3000)]


def random_expression(r: random.Random, terms: int = 4) -> str:
    """A random arithmetic expression with small numbers, decimals and parentheses."""
    parts = []
    for _ in range(terms):
        n = str(r.randint(1, 999)) if r.random() < 0.8 else f"{r.randint(0, 99)}.{r.randint(1, 99)}"
        parts.append(f"({n})" if r.random() < 0.2 else n)
        parts.append(r.choice(_OPS))
    return " ".join(parts[:-1])


def rate(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(calls per second, seconds) of `fn` doing `n` calls."""
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return n / seconds if seconds > 0 else float("inf"), seconds


def bench_calculator(n: int = 5000, seed: int = 0) -> dict[str, float]:
    from swirl_lite.tools.calculator import Calculator

    r = random.Random(seed)
    exprs = [random_expression(r, r.randint(2, 6)) for _ in range(n)]
    calc = Calculator()
    single, _ = rate(lambda: [calc.batch([e]) for e in exprs], n)
    batched, _ = rate(lambda: calc.batch(exprs), n)
    return {"calls": n, "single_per_s": single, "batched_per_s": batched}


def synthetic_corpus(n_docs: int = 5000, seed: int = 0) -> tuple[list[Document], list[str]]:
    """Documents of random words from a 3000-word vocabulary, and one title query per document."""
    r = random.Random(seed)
    docs = [
        Document(f"d{i}", f"Entity {i} {r.choice(_WORDS)}", " ".join(r.choices(_WORDS, k=r.randint(40, 120))))
        for i in range(n_docs)
    ]
    queries = [f"{d.title} {' '.join(d.text.split()[:3])}" for d in docs]
    return docs, queries


def bench_search(docs: list[Document], queries: list[str], top_k: int = 1) -> dict[str, float]:
    """Cold build, cached load and single vs batched queries/s of the BM25 search tool."""
    from swirl_lite.tools.search import SearchTool

    with tempfile.TemporaryDirectory() as cache:
        cold = SearchTool(docs, top_k=top_k, cache_dir=cache)
        warm = SearchTool(docs, top_k=top_k, cache_dir=cache)
        assert warm.retriever.from_cache, "the second build should load the cached index"
        single, _ = rate(lambda: [cold.batch([q]) for q in queries], len(queries))
        batched, _ = rate(lambda: cold.batch(queries), len(queries))
        return {
            "docs": len(docs),
            "queries": len(queries),
            "build_s": cold.retriever.seconds,
            "cached_load_s": warm.retriever.seconds,
            "single_per_s": single,
            "batched_per_s": batched,
        }


def hotpotqa_recall(examples: list[Example], corpus: list[Document], ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """hit@k: share of questions with a supporting paragraph in the top k (question as query);
    recall@k: mean share of each question's supporting paragraphs found in the top k."""
    from swirl_lite.tools.search import SearchTool

    tool = SearchTool(corpus, top_k=max(ks))
    ranked = tool.search_ids([ex.question for ex in examples])
    out: dict[str, float] = {"questions": len(examples), "docs": len(corpus)}
    for k in ks:
        hits, recall = 0, 0.0
        for ex, ids in zip(examples, ranked, strict=True):
            gold = {p["id"] for p in ex.meta["paragraphs"] if p["supporting"]}
            found = gold & set(ids[:k])
            hits += bool(found)
            recall += len(found) / len(gold) if gold else 0.0
        out[f"hit@{k}"] = hits / len(examples) if examples else 0.0
        out[f"recall@{k}"] = recall / len(examples) if examples else 0.0
    return out
