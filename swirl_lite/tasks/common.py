"""What the built-in tasks share: loading with counted skips, the prompt, answer extraction, grading,
and the per-split search corpus.

A task module only says where its data lives and how one row becomes an `Example` (`parse_row`);
this base class does the rest the same way for every dataset.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from swirl_lite.config import DataConfig
from swirl_lite.tasks.base import Document, Example, Grade
from swirl_lite.tasks.demos import DEMOS
from swirl_lite.tasks.grading import resolve_grader
from swirl_lite.tasks.loading import collect, looks_local, read_rows
from swirl_lite.tasks.prompts import Demonstration, build_prompt
from swirl_lite.tools.base import Tool

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_ANSWER_OPEN = "<answer>"


def extract_answer(text: str | None) -> str | None:
    """The content of the first `<answer>...</answer>` (the rule of `actions.parse_action`).

    Lenient on one point: an opening tag that is never closed yields the rest of the text, because
    some backends (vLLM) cut the stop string `</answer>` off the returned turn.
    """
    if not text:
        return None
    match = _ANSWER.search(text)
    if match is not None:
        return match.group(1).strip() or None
    start = text.find(_ANSWER_OPEN)
    if start < 0:
        return None
    return text[start + len(_ANSWER_OPEN) :].strip() or None


class BaseTask:
    """Implements the `Task` protocol; subclasses set the class attributes and `parse_row`."""

    name: str = ""
    kind: Literal["math", "qa"] = "qa"
    default_tools: tuple[str, ...] = ()
    max_steps: int = 5
    hub_path: str | None = None  # used when data.path is unset
    hub_config: str | None = None  # used with hub_path when data.config_name is unset
    split_aliases: dict[str, str] = {}  # hub splits that exist under another name
    default_grader: str = "f1"
    demo_sources: tuple[str, ...] = ("builtin",)  # accepted values of data.demonstrations_from

    def __init__(self, data_cfg: DataConfig | None = None):
        self.cfg = data_cfg if data_cfg is not None else DataConfig(task=self.name)
        if self.cfg.demonstrations_from not in self.demo_sources:
            raise ValueError(
                f"data.demonstrations_from: task {self.name!r} takes only "
                f"{' or '.join(map(repr, self.demo_sources))}, not {self.cfg.demonstrations_from!r}"
            )
        grader = self.cfg.grader if self.cfg.grader != "auto" else self.default_grader
        self._grade: Callable[[str | None, list[str]], Grade] = resolve_grader(grader)
        self.skip_reasons: Counter = Counter()  # reason -> rows skipped by the last load()
        self._nearest: Any = None  # `similar`: the index over the demonstration pool, built on first use

    # ------------------------------------------------------------------ loading

    @property
    def skipped(self) -> int:
        """Rows skipped as malformed by the last `load()` (reasons in `skip_reasons`)."""
        return sum(self.skip_reasons.values())

    def source(self) -> str:
        path = self.cfg.path or self.hub_path
        if path is None:
            raise ValueError(f"data.path: task {self.name!r} has no default dataset; set data.path")
        return path

    def rows(self, split: str) -> Sequence[dict]:
        """Raw rows of a split (cached): a local file is read whole, whatever the split."""
        path = self.source()
        if looks_local(path):
            key = f"local:{path}:{split}" if Path(path).is_dir() else f"local:{path}"
        else:
            split = self.split_aliases.get(split, split)
            key = f"hub:{path}:{split}"
        cache: dict[str, Sequence[dict]] = self.__dict__.setdefault("_rows", {})
        if key not in cache:
            config = self.cfg.config_name
            if config is None and path == self.hub_path:
                config = self.hub_config
            cache[key] = read_rows(path, config, split)
        return cache[key]

    def parse_row(self, row: dict, index: int) -> Example:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, split: str, limit: int | None = None, seed: int = 0, shuffle: bool = True) -> list[Example]:
        """`limit` examples of `split` in a seeded shuffled order; malformed rows are skipped and
        counted in `self.skipped` (never silently, never a crash)."""
        self.skip_reasons = Counter()
        return collect(self.rows(split), self.parse_row, limit, seed, shuffle, self.skip_reasons)

    # ------------------------------------------------------------------ prompt, answer, grade

    def demonstrations(self, example: Example, n: int) -> list[Demonstration]:
        """The `n` worked trajectories shown before `example` (the written ones, `demos.py`)."""
        return list(DEMOS[self.kind][: max(n, 0)])

    def gold_solution(self, example: Example) -> Demonstration | None:
        """`example`'s gold solution as a worked trajectory (tool calls with their results, then the
        answer), or None when the task has none (`train.solved_states` and `train.gold_states` need one)."""
        return None

    def nearest_demonstrations(
        self, example: Example, n: int, pool: Callable[[], Sequence[Demonstration]]
    ) -> list[Demonstration]:
        """`data.demonstrations_from: similar`: the `n` demonstrations of `pool()` nearest to
        `example` (`similar.py`); the pool is built and indexed once, on first use."""
        if self._nearest is None:
            from swirl_lite.tasks.similar import NearestDemonstrations

            self._nearest = NearestDemonstrations(pool())
        return self._nearest.pick(example, n)

    def prompt(
        self, example: Example, max_steps: int, demonstrations: int = 0, tools: Sequence[Tool] | None = None
    ) -> list[dict]:
        """State s_0; `tools` (the run's) decide what the instructions explain (`prompts.instructions`)."""
        demos = self.demonstrations(example, demonstrations)
        return build_prompt(self.kind, example.question, max_steps, demos, tools)

    def extract_answer(self, text: str) -> str | None:
        return extract_answer(text)

    def grade(self, prediction: str | None, example: Example) -> Grade:
        return self._grade(prediction, [example.answer, *example.aliases])

    def corpus(self, examples: list[Example]) -> list[Document]:
        """Every paragraph of the examples, deduplicated by (title, text): the paper's per-split
        search database (METHOD.md §1). Empty for tasks without paragraphs."""
        seen: set[tuple[str, str]] = set()
        docs: list[Document] = []
        for ex in examples:
            for p in ex.meta.get("paragraphs", ()):
                key = (p["title"], p["text"])
                if key not in seen:
                    seen.add(key)
                    docs.append(Document(id=p["id"], title=p["title"], text=p["text"]))
        return docs

