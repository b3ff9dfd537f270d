"""The search tool behind `<search_query>`: BM25 over the task's own paragraphs.

METHOD.md §1: the paper embeds the query (Gecko) and returns the single nearest article from a
database of all articles of the dataset split. swirl-lite departs (§6): a local BM25 index (the
`bm25s` library) over the same per-split pool, no GPU and no hosted vector store. Top-k defaults to 1
as in the paper. Results read `Title: text`, whitespace collapsed, trimmed to `max_chars`; with k > 1
they are numbered `[1] ...` one per line.

The index is built once per corpus and cached on disk under
`$SWIRL_LITE_CACHE/bm25/<hash>` (default `~/.cache/swirl-lite/bm25/<hash>`), the hash taken over the
corpus content and the index settings, so an edited corpus never hits a stale index. `Retriever` is
the seam for a dense retriever later: anything that maps queries to ranked document indices.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from swirl_lite.errors import read_utf8
from swirl_lite.tasks.base import Document

STOPWORDS = "en"
BM25_PARAMS = {"k1": 1.5, "b": 0.75, "method": "lucene"}
INDEX_VERSION = "title+text/1"  # bump when index_text() changes: it is part of the cache key
MAX_QUERY_CHARS = 1000  # a runaway model query is cut, not tokenized whole


@runtime_checkable
class Retriever(Protocol):
    def retrieve(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        """For each query, up to k (document index, score) pairs, best first, score > 0 only."""
        ...


@dataclass(frozen=True)
class Hit:
    id: str
    title: str
    text: str
    score: float


def cache_root() -> Path:
    return Path(os.environ.get("SWIRL_LITE_CACHE") or Path.home() / ".cache" / "swirl-lite")


def corpus_hash(docs: list[Document]) -> str:
    """Content hash of the corpus and the index settings: the cache key."""
    import bm25s

    h = hashlib.sha256()
    h.update(json.dumps([bm25s.__version__, INDEX_VERSION, STOPWORDS, BM25_PARAMS], sort_keys=True).encode())
    for d in docs:
        h.update(json.dumps([d.title, d.text]).encode())
        h.update(b"\n")
    return h.hexdigest()[:24]


def index_text(doc: Document) -> str:
    # Titles carry the entity names that multi-hop queries ask for, so they are indexed too.
    return f"{doc.title}\n{doc.text}"


class BM25Retriever:
    """bm25s index over `docs`, loaded from the disk cache when present. `cache_dir=False` disables it."""

    def __init__(self, docs: list[Document], cache_dir: str | Path | None | bool = None):
        import bm25s

        self.n_docs = len(docs)
        self.from_cache = False
        start = time.perf_counter()
        folder = None
        if cache_dir is not False:
            base = Path(cache_dir) if isinstance(cache_dir, (str, Path)) else cache_root() / "bm25"
            folder = base / corpus_hash(docs)
        if folder is not None and (folder / "params.index.json").is_file():
            self.model = bm25s.BM25.load(str(folder), show_progress=False)
            self.from_cache = True
        else:
            tokens = bm25s.tokenize([index_text(d) for d in docs], stopwords=STOPWORDS, show_progress=False)
            self.model = bm25s.BM25(**BM25_PARAMS)
            self.model.index(tokens, show_progress=False)
            if folder is not None:
                self._save(folder)
        self.seconds = time.perf_counter() - start  # build or load time, for `bench tools`

    def _save(self, folder: Path) -> None:
        """Write to a temporary folder and rename, so a crash never leaves a half index that loads."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
        try:
            self.model.save(str(tmp), show_progress=False)
            os.replace(tmp, folder)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process won the race: its copy is equal

    def retrieve(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        import bm25s

        if not queries or self.n_docs == 0:
            return [[] for _ in queries]
        k = min(k, self.n_docs)
        cut = [q[:MAX_QUERY_CHARS] for q in queries]
        tokens = bm25s.tokenize(cut, stopwords=STOPWORDS, return_ids=False, show_progress=False)
        docs, scores = self.model.retrieve(tokens, k=k, show_progress=False)
        return [
            [(int(i), float(s)) for i, s in zip(row_docs, row_scores, strict=True) if s > 0]
            for row_docs, row_scores in zip(docs, scores, strict=True)
        ]


def trim(text: str, max_chars: int) -> str:
    """Collapse whitespace and cut at a word boundary, marking the cut with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    if " " in cut[max_chars // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


def load_corpus(path: str | Path) -> list[Document]:
    """A JSONL corpus, one `{id, title, text}` per line (id defaults to the line number)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"tools.corpus: no such file {str(path)!r}")
    docs = []
    try:
        text = read_utf8(file)
    except ValueError as exc:
        raise ValueError(f"tools.corpus: {exc}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"tools.corpus: {file}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not str(row.get("text", "")).strip():
            raise ValueError(f"tools.corpus: {file}:{n}: each line needs a non-empty 'text'")
        docs.append(Document(str(row.get("id", n)), str(row.get("title", "")), str(row["text"])))
    return docs


class SearchTool:
    """The `search` tool (tag `search_query`) over a fixed list of documents."""

    name = "search"
    tag = "search_query"

    def __init__(
        self,
        docs: list[Document],
        top_k: int = 1,
        max_chars: int = 600,
        retriever: Retriever | None = None,
        cache_dir: str | Path | None | bool = None,
    ):
        if not docs:
            raise ValueError("search: the corpus is empty; set tools.corpus or use a task with paragraphs")
        self.docs = docs
        self.top_k = top_k
        self.max_chars = max_chars
        self.retriever = retriever if retriever is not None else BM25Retriever(docs, cache_dir)

    def hits(self, queries: list[str], k: int | None = None) -> list[list[Hit]]:
        """Ranked hits per query (empty for an empty query or when nothing matches)."""
        k = k or self.top_k
        live = [i for i, q in enumerate(queries) if isinstance(q, str) and q.strip()]
        ranked = self.retriever.retrieve([queries[i] for i in live], k) if live else []
        out: list[list[Hit]] = [[] for _ in queries]
        for i, pairs in zip(live, ranked, strict=True):
            out[i] = [Hit(self.docs[j].id, self.docs[j].title, self.docs[j].text, s) for j, s in pairs]
        return out

    def search_ids(self, queries: list[str], k: int | None = None) -> list[list[str]]:
        """Document ids of the hits per query: what the reference judge compares with gold paragraphs."""
        return [[h.id for h in hits] for hits in self.hits(queries, k)]

    def format(self, hits: list[Hit]) -> str:
        if not hits:
            return "no matching paragraph"
        if len(hits) == 1:
            return trim(f"{hits[0].title}: {hits[0].text}", self.max_chars)
        return "\n".join(f"[{n}] {trim(f'{h.title}: {h.text}', self.max_chars)}" for n, h in enumerate(hits, 1))

    def batch(self, queries: list[str]) -> list[str]:
        try:
            results = self.hits(queries)
        except Exception as exc:  # a tool result, never a crash of the rollout
            return [f"error: search failed ({type(exc).__name__})"] * len(queries)
        return [
            self.format(h) if isinstance(q, str) and q.strip() else "error: empty query"
            for q, h in zip(queries, results, strict=True)
        ]
