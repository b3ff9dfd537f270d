"""BM25 search: right paragraph for title words, batch == one by one, disk cache, and the tool registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swirl_lite.config import DataConfig, ToolsConfig
from swirl_lite.tasks import get_task
from swirl_lite.tasks.base import Document
from swirl_lite.tools import build_tools
from swirl_lite.tools.base import Tool
from swirl_lite.tools.search import BM25Retriever, Retriever, SearchTool, corpus_hash, load_corpus

DATA = Path(__file__).parent / "data"

DOCS = [
    Document("p1", "Marrowind Abbey", "A ruined abbey on a hill, built by monks in the twelfth century."),
    Document("p2", "Selka Falls", "A waterfall fed by melting snow; it freezes solid in hard winters."),
    Document("p3", "Orrin Tavish", "A botanist who catalogued ferns and mosses of the northern valleys."),
    Document("p4", "Glasswick", "A market town famous for coloured glass and a clock tower."),
    Document("p5", "Quorra Lake", "A deep lake where a ferry crosses to an island with an old chapel."),
    Document("p6", "Tinder Pass", "A mountain road closed by snow for half the year."),
    Document("p7", "Bellamy Cup", "A rowing race held each summer on Quorra Lake since 1890."),
    Document("p8", "Ferns of the North", "A book with hand-drawn plates of ferns and mosses."),
]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SWIRL_LITE_CACHE", str(tmp_path / "cache"))


def test_title_words_find_their_paragraph():
    tool = SearchTool(DOCS)
    for doc in DOCS:
        assert tool.search_ids([doc.title]) == [[doc.id]], doc.title
    assert tool.batch(["Selka Falls"]) == [f"Selka Falls: {DOCS[1].text}"]


def test_batch_equals_one_by_one():
    tool = SearchTool(DOCS, top_k=3)
    queries = ["lake ferry", "Orrin Tavish ferns", "", "snow", "zzz unknown words", "glass clock town"]
    assert tool.batch(queries) == [tool.batch([q])[0] for q in queries]
    assert tool.search_ids(queries) == [tool.search_ids([q])[0] for q in queries]


def test_top_k_results_are_numbered_and_ranked():
    tool = SearchTool(DOCS, top_k=2)
    (result,) = tool.batch(["Orrin Tavish ferns"])
    lines = result.split("\n")
    assert len(lines) == 2 and lines[0].startswith("[1] ") and lines[1].startswith("[2] ")
    assert set(tool.search_ids(["Orrin Tavish ferns"])[0]) == {"p3", "p8"}
    hits = tool.hits(["Orrin Tavish ferns"])[0]
    assert hits[0].score >= hits[1].score > 0


def test_empty_and_unmatched_queries_return_short_strings():
    tool = SearchTool(DOCS)
    assert tool.batch(["", "   "]) == ["error: empty query", "error: empty query"]
    assert tool.batch(["the of and"]) == ["no matching paragraph"]  # only stopwords
    assert tool.search_ids(["qwertyuiop"]) == [[]]
    assert tool.batch([]) == []


def test_results_are_trimmed_to_max_chars():
    long_doc = Document("long", "Endless Road", "word " * 500)
    tool = SearchTool([*DOCS, long_doc], max_chars=80)
    (result,) = tool.batch(["Endless"])
    assert len(result) <= 80 and result.endswith("…") and result.startswith("Endless Road: word")


def test_index_cache_is_hit_the_second_time(tmp_path):
    first = BM25Retriever(DOCS)
    second = BM25Retriever(DOCS)
    assert not first.from_cache and second.from_cache
    assert (tmp_path / "cache" / "bm25" / corpus_hash(DOCS)).is_dir()
    assert first.retrieve(["Glasswick glass"], 2) == second.retrieve(["Glasswick glass"], 2)
    edited = [*DOCS[:-1], Document("p8", "Ferns of the North", "A different text.")]
    assert corpus_hash(edited) != corpus_hash(DOCS)
    assert not BM25Retriever(edited).from_cache  # an edited corpus never hits a stale index
    assert not BM25Retriever(DOCS, cache_dir=False).from_cache


def test_custom_retriever_plugs_in():
    class Last:
        def retrieve(self, queries, k):
            return [[(len(DOCS) - 1, 1.0)] for _ in queries]

    assert isinstance(Last(), Retriever)
    tool = SearchTool(DOCS, retriever=Last())
    assert tool.search_ids(["anything"]) == [["p8"]]


def test_load_corpus(tmp_path):
    file = tmp_path / "corpus.jsonl"
    file.write_text(json.dumps({"id": "a", "title": "T", "text": "hello"}) + "\n\n" + json.dumps({"text": "x"}) + "\n")
    docs = load_corpus(file)
    assert [(d.id, d.title, d.text) for d in docs] == [("a", "T", "hello"), ("3", "", "x")]
    with pytest.raises(FileNotFoundError, match="tools.corpus"):
        load_corpus(tmp_path / "missing.jsonl")


def test_build_tools_uses_task_defaults_and_corpus():
    task = get_task(DataConfig(task="hotpotqa", path=str(DATA / "hotpotqa_tiny.json")))
    examples = task.load("train", shuffle=False)
    tools = build_tools([], ToolsConfig(), task, examples)
    assert list(tools) == ["search_query"] and isinstance(tools["search_query"], Tool)
    search = tools["search_query"]
    (ids,) = search.search_ids(["Ingrid Solvang born"])
    supporting = {p["id"] for p in examples[0].meta["paragraphs"] if p["supporting"]}
    assert ids[0] in supporting
    both = build_tools(["calculator", "search"], ToolsConfig(search_top_k=2), task, examples)
    assert set(both) == {"math_exp", "search_query"} and both["search_query"].top_k == 2
    assert both["math_exp"].batch(["6*7"]) == ["42"]


def test_build_tools_errors_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="unknown tool 'calculater'"):
        build_tools(["calculater"], ToolsConfig())
    with pytest.raises(ValueError, match="both serve"):
        build_tools(["calculator", "calculator"], ToolsConfig())
    qa = get_task(DataConfig(task="custom", path=str(DATA / "custom_tiny.csv")))
    with pytest.raises(ValueError, match="tools.corpus"):
        build_tools([], ToolsConfig(), qa, qa.load("train"))
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "e", "title": "Earth", "text": "The planet we live on."}) + "\n")
    tools = build_tools([], ToolsConfig(corpus=str(corpus)), qa, [])
    assert tools["search_query"].search_ids(["planet we live on"]) == [["e"]]


def test_user_tool_by_import_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    tools = build_tools(["tool_helpers:Echo", "tool_helpers:Upper"], ToolsConfig(search_max_chars=77))
    assert tools["echo"].batch(["hi"]) == ["hi"]
    assert tools["upper"].batch(["hi"]) == ["HI:77"]  # a constructor parameter receives the ToolsConfig
    with pytest.raises(ValueError, match="not a Tool"):
        build_tools(["tool_helpers:NotATool"], ToolsConfig())


def test_bench_tools_command_runs_on_a_small_synthetic_corpus():
    from click.testing import CliRunner

    from swirl_lite.cli import main

    out = CliRunner().invoke(main, ["bench", "tools", "--docs", "200", "--queries", "50", "--calls", "100"])
    assert out.exit_code == 0, out.output
    assert "batched calls/s" in out.output and "index build s" in out.output and "single queries/s" in out.output


def test_tools_run_search_with_a_corpus_file(tmp_path):
    from click.testing import CliRunner

    from swirl_lite.cli import tools_group

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in DOCS))
    out = CliRunner().invoke(tools_group, ["run", "search", "--corpus", str(corpus), "Selka Falls"])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == f"Selka Falls -> Selka Falls: {DOCS[1].text}"
    missing = CliRunner().invoke(tools_group, ["run", "search", "x"])
    assert missing.exit_code == 1 and "needs a corpus" in missing.output
