"""HotpotQA, distractor setting: two-hop questions over 10 Wikipedia paragraphs (2 gold, 8 distractors).

Reads both layouts:
- hub `hotpotqa/hotpot_qa`, config `distractor`: `context = {title: [...], sentences: [[...]]}`,
  `supporting_facts = {title: [...], sent_id: [...]}`;
- the original JSON files: `context = [[title, [sentences]]]`, `supporting_facts = [[title, sent_id]]`.
`meta["paragraphs"]` lists every context paragraph as {id, title, text, supporting}; the search
corpus is all paragraphs of the loaded examples (METHOD.md §1: the split's own articles). The model
never sees the context directly. The hub has no labelled test split, so `test` reads `validation`.
"""

from __future__ import annotations

from swirl_lite.tasks.base import Example
from swirl_lite.tasks.common import BaseTask
from swirl_lite.tasks.loading import SkipRow, doc_id, need, stable_id


def _pairs(value: object, first: str, second: str) -> list[tuple]:
    """Hub columns {first: [...], second: [...]} or original rows [[a, b], ...] -> [(a, b), ...]."""
    if isinstance(value, dict):
        return list(zip(value.get(first) or [], value.get(second) or [], strict=False))
    if isinstance(value, list):
        return [tuple(item[:2]) for item in value if isinstance(item, (list, tuple)) and len(item) >= 2]
    return []


def parse_context(row: dict) -> tuple[list[dict], list[list]]:
    """(paragraphs with a supporting flag, supporting facts as [[title, sent_id]])."""
    context = _pairs(need(row, "context"), "title", "sentences")
    facts = [[str(t), int(s)] for t, s in _pairs(row.get("supporting_facts"), "title", "sent_id")]
    gold_titles = {t for t, _ in facts}
    paragraphs = []
    for title, sentences in context:
        text = "".join(sentences).strip() if isinstance(sentences, list) else str(sentences).strip()
        title = str(title)
        paragraphs.append(
            {"id": doc_id(title, text), "title": title, "text": text, "supporting": title in gold_titles}
        )
    if not paragraphs:
        raise SkipRow("missing context")
    return paragraphs, facts


class HotpotQA(BaseTask):
    name = "hotpotqa"
    kind = "qa"
    default_tools = ("search",)
    max_steps = 5
    hub_path = "hotpotqa/hotpot_qa"
    hub_config = "distractor"
    split_aliases = {"test": "validation", "dev": "validation"}
    default_grader = "f1"

    def parse_row(self, row: dict, index: int) -> Example:
        question = str(need(row, "question")).strip()
        answer = str(need(row, "answer")).strip()
        paragraphs, facts = parse_context(row)
        ex_id = str(row.get("_id") or row.get("id") or f"hotpotqa-{stable_id(question)}")
        meta = {"paragraphs": paragraphs, "supporting_facts": facts}
        for key in ("type", "level"):
            if row.get(key):
                meta[key] = row[key]
        return Example(ex_id, question, answer, meta=meta)
