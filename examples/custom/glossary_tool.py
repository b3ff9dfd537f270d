"""An example user tool: look a term up in a glossary instead of searching with BM25.

A tool is any class with a `name`, the action `tag` it serves and a batched `batch(queries)`.
This one serves `<search_query>`, so the custom QA task's prompt already explains it to the model.
Use it from a recipe with `tools.use: [examples.custom.glossary_tool:GlossaryLookup]`.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

GLOSSARY = Path(__file__).with_name("glossary.json")


class GlossaryLookup:
    name = "glossary"
    tag = "search_query"

    def __init__(self) -> None:
        self.entries: dict[str, str] = json.loads(GLOSSARY.read_text())
        self._keys = {key.lower(): key for key in self.entries}

    def lookup(self, query: str) -> str:
        words = query.lower().strip(" ?.")
        for low, key in self._keys.items():  # a term named in the query wins
            if low in words:
                return f"{key}: {self.entries[key]}"
        close = difflib.get_close_matches(words, list(self._keys), n=1, cutoff=0.4)
        if not close:
            return "no glossary entry matches; try the exact name of a thing"
        key = self._keys[close[0]]
        return f"{key}: {self.entries[key]}"

    def batch(self, queries: list[str]) -> list[str]:
        return [self.lookup(q) for q in queries]
