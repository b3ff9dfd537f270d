"""GSM8K: grade-school math word problems (hub `openai/gsm8k`, config `main`, or a local file).

Row layout: `question`, and `answer` = a worked solution with calculator annotations `<<48/2=24>>`
that ends in `#### 72`. Gold is the number after `####`; `meta["steps"]` holds the annotated
intermediate values in order (numbers), the gold material of the reference judge; `meta["solution"]`
is the worked solution without annotations. Step cap 10 (METHOD.md §1).
"""

from __future__ import annotations

import re

from swirl_lite.tasks.base import Example
from swirl_lite.tasks.common import BaseTask
from swirl_lite.tasks.grading import format_number, parse_number
from swirl_lite.tasks.loading import SkipRow, need, stable_id

_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")


def as_number(text: str) -> int | float | None:
    """`"24"` -> 24, `".5"` -> 0.5; None when `text` holds no number."""
    value = parse_number(text)
    if value is None:
        return None
    return int(value) if value.denominator == 1 else float(value)


def parse_solution(answer: str) -> tuple[str, list[int | float], str]:
    """(gold number text, annotated intermediate values, solution without annotations)."""
    if "####" not in answer:
        raise SkipRow("gold not parseable")
    body, gold_text = answer.rsplit("####", 1)
    gold = parse_number(gold_text.strip())
    if gold is None:
        raise SkipRow("gold not parseable")
    steps = [v for _, result in _ANNOTATION.findall(body) if (v := as_number(result)) is not None]
    return format_number(gold), steps, _ANNOTATION.sub("", body).strip()


class GSM8K(BaseTask):
    name = "gsm8k"
    kind = "math"
    default_tools = ("calculator",)
    max_steps = 10
    hub_path = "openai/gsm8k"
    hub_config = "main"
    default_grader = "numeric"

    def parse_row(self, row: dict, index: int) -> Example:
        question = str(need(row, "question"))
        gold, steps, solution = parse_solution(str(need(row, "answer")))
        ex_id = str(row.get("id") or f"gsm8k-{stable_id(question)}")
        return Example(ex_id, question.strip(), gold, meta={"steps": steps, "solution": solution})
