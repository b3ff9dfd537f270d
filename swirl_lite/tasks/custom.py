"""A task from any JSONL/JSON/CSV/parquet file or hub dataset: name the fields, pick a grader.

Recipe keys (`data:`): `path` (required), `question_field`, `answer_field`, `id_field`, `grader`
(numeric, exact, f1, or `module:function` taking (prediction, gold) and returning a bool, a float
score or a Grade), `kind` (math or qa). An answer that is a list counts as gold plus aliases.

`kind: auto` is decided by the grader (numeric -> math; exact/f1 -> qa) and, when the grader is
`auto` or a function too, by the data: math when at least 80% of the first 50 gold answers are plain
numbers. Math tasks get the calculator and a step cap of 10; QA tasks get search (which needs
`tools.corpus`, since a custom row has no paragraphs) and a cap of 5. A row missing the question or
answer is skipped and counted in `task.skipped`.
"""

from __future__ import annotations

import re

from swirl_lite.config import DataConfig
from swirl_lite.tasks.base import Example
from swirl_lite.tasks.common import BaseTask
from swirl_lite.tasks.loading import NOT_AN_OBJECT, SkipRow, need, stable_id

_PLAIN_NUMBER = re.compile(r"\s*-?[$€£]?\d[\d,]*(\.\d+)?%?\s*")
_SETTINGS = {"math": (("calculator",), 10, "numeric"), "qa": (("search",), 5, "f1")}


def _golds(value: object) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [str(v).strip() for v in items if v is not None and str(v).strip()]


class CustomTask(BaseTask):
    name = "custom"

    def __init__(self, data_cfg: DataConfig):
        if not data_cfg.path:
            raise ValueError("data.path: task 'custom' needs a dataset: set data.path")
        self.cfg = data_cfg
        self.kind = self._decide_kind()  # may read the rows; rows() caches them for load()
        self.default_tools, self.max_steps, self.default_grader = _SETTINGS[self.kind]
        super().__init__(data_cfg)

    def _decide_kind(self) -> str:
        cfg = self.cfg
        if cfg.kind != "auto":
            return cfg.kind
        if cfg.grader == "numeric":
            return "math"
        if cfg.grader in ("exact", "f1"):
            return "qa"
        # Peek at the data: reads the file once (cached for load()).
        rows = self.rows(cfg.split)
        answers = [
            golds[0]
            for i in range(min(len(rows), 200))
            if (golds := _golds(rows[i].get(cfg.answer_field)))
        ][:50]
        numeric = sum(bool(_PLAIN_NUMBER.fullmatch(a)) for a in answers)
        return "math" if answers and numeric >= 0.8 * len(answers) else "qa"

    def load(self, split: str, limit: int | None = None, seed: int = 0, shuffle: bool = True) -> list[Example]:
        """The base loader, after checking that the named columns exist (a missing one is named)."""
        rows = self.rows(split)
        head = [r for r in (rows[i] for i in range(min(len(rows), 50))) if isinstance(r, dict)]
        columns = sorted({k for r in head for k in r if k != NOT_AN_OBJECT})
        for key, name in (("question_field", self.cfg.question_field), ("answer_field", self.cfg.answer_field)):
            if columns and name not in columns:
                raise ValueError(
                    f"data.{key}: no column {name!r} in {self.cfg.path} (columns: {', '.join(columns)[:200]}); "
                    f"set data.{key}"
                )
        return super().load(split, limit, seed, shuffle)

    def parse_row(self, row: dict, index: int) -> Example:
        cfg = self.cfg
        question = str(need(row, cfg.question_field)).strip()
        golds = _golds(need(row, cfg.answer_field))
        if not golds:
            raise SkipRow(f"missing {cfg.answer_field}")
        raw_id = row.get(cfg.id_field) if cfg.id_field else None
        ex_id = str(raw_id) if raw_id not in (None, "") else f"custom-{index}-{stable_id(question)[:6]}"
        meta = {k: v for k, v in row.items() if k not in (cfg.question_field, cfg.answer_field)}
        return Example(ex_id, question, golds[0], aliases=golds[1:], meta=meta)
