"""The Task protocol: what the pipeline needs from a dataset.

A task loads rows into `Example`s, builds the chat prompt (instructions, optional demonstrations,
question), extracts the final answer from `<answer>...</answer>` and grades it against gold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from swirl_lite.schema import Document  # a search paragraph; defined with the records tools read

__all__ = ["Document", "Example", "Grade", "Task"]


@dataclass
class Example:
    id: str
    question: str
    answer: str  # the canonical gold answer
    aliases: list[str] = field(default_factory=list)  # other accepted gold answers (MuSiQue)
    # Gold material for the reference judge and the search corpus, e.g.
    # "steps": intermediate values (math), "paragraphs": [{id,title,text,supporting}] (QA).
    meta: dict = field(default_factory=dict)


@dataclass
class Grade:
    correct: bool
    score: float  # 0/1 for math and exact match; token F1 for QA
    em: float | None = None
    f1: float | None = None


@runtime_checkable
class Task(Protocol):
    name: str
    kind: Literal["math", "qa"]
    default_tools: tuple[str, ...]  # registry names, e.g. ("calculator",)
    max_steps: int  # the paper's step cap: 10 math, 5 QA

    def load(self, split: str, limit: int | None = None, seed: int = 0, shuffle: bool = True) -> list[Example]: ...

    def prompt(self, example: Example, max_steps: int, demonstrations: int = 0) -> list[dict]:
        """State s_0. A task may also take `tools=` (the run's Tool objects) to explain them."""
        ...

    def extract_answer(self, text: str) -> str | None: ...

    def grade(self, prediction: str | None, example: Example) -> Grade: ...

    def corpus(self, examples: list[Example]) -> list[Document]: ...
