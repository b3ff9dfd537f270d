"""GSM8K: grade-school math word problems (hub `openai/gsm8k`, config `main`, or a local file).

Row layout: `question`, and `answer` = a worked solution with calculator annotations `<<48/2=24>>`
that ends in `#### 72`. Gold is the number after `####`; `meta["steps"]` holds the annotated
intermediate values in order (numbers), the gold material of the reference judge; `meta["solution"]`
is the worked solution without annotations. Step cap 10 (METHOD.md §1).

Demonstrations (`data.demonstrations_from: train`): a gold solution becomes a worked trajectory, one
`<math_exp>` step per annotation (thought = its text without the annotation, result = what our
calculator prints for the expression) and a final `<answer>`. Rows whose annotations are missing,
are not plain arithmetic, repeat an expression, or disagree with the calculator beyond rounding are
skipped and counted (`demo_skip_reasons`). The pool comes from the first rows of the train split in
`data.seed` order, short ones (2-4 calculations) preferred; the question being asked is never its own
demonstration. Departure: the paper prompts a 27B model with instructions only; a 135M model needs
examples, and real training rows are more varied than the few we wrote (`demos.py`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

from swirl_lite.actions import TAGS
from swirl_lite.config import DataConfig
from swirl_lite.tasks.base import Example
from swirl_lite.tasks.common import BaseTask
from swirl_lite.tasks.grading import format_number, parse_number
from swirl_lite.tasks.loading import SkipRow, need, sample, stable_id
from swirl_lite.tasks.prompts import Demonstration, DemoStep, same_question
from swirl_lite.tools.calculator import evaluate

_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_ANY_ANNOTATION = re.compile(r"<<[^<>]*>>")
_SHOWN = re.compile(r"\s*[$€£]?\d[\d,]*(?:\.\d+)?%?")  # the value a solution prints after `>>`
_SYMBOLS = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-", "$": None, "€": None, "£": None})
_TIMES = re.compile(r"(?<=[\d)])(\s*)[xX](\s*)(?=[\d.(])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*%(?!\s*[\d.(])")  # `12.5%`, not modulo `7%2`
_PLAIN = re.compile(r"[\d.+\-*/() ]+")
_BARE = re.compile(r"[\s()]*[\d.]+[\s()]*")
# A preferred demonstration is short, because a small model reads it before every question:
# 2-4 calculations, question and thoughts within PREFERRED_CHARS (about a third of GSM8K rows).
PREFERRED_STEPS = range(2, 5)
PREFERRED_CHARS = 400
SCAN_ROWS = 400  # train rows read at most to fill the pool


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


# ---------------------------------------------------------------- solution -> demonstration


def normalize_expression(text: str) -> str:
    """An annotation's left side as the plain arithmetic our calculator reads and a model should
    copy: `1,200 x $3` -> `1200 * 3`, `12.5%` -> `(12.5/100)`."""
    expr = text.translate(_SYMBOLS).replace("^", "**")
    expr = _THOUSANDS.sub("", expr)
    expr = _TIMES.sub(r"\1*\2", expr)
    expr = _PERCENT.sub(r"(\1/100)", expr)
    return " ".join(expr.split())


def _decimals(text: str) -> int:
    match = re.search(r"\.(\d+)", text)
    return len(match.group(1)) if match else 0


def agrees(printed: str, written: str) -> bool:
    """The calculator's printed value equals the annotation's written one up to the rounding of
    either (`24` = `24.0`, `3.333333333` = `3.33`, `2400` = `2,400`; not `6.666666667` vs `6.66`)."""
    shown = parse_number(written)
    try:
        value = Fraction(printed)
    except ValueError:
        return False
    if shown is None:
        return False
    slack = Fraction(1, 2 * 10 ** _decimals(written))  # the annotation may round
    if len(re.sub(r"\D", "", printed).lstrip("0")) >= 10:  # the calculator rounded to 10 digits
        slack += Fraction(1, 2 * 10 ** _decimals(printed))
    return abs(value - shown) <= slack


def _clean(text: str) -> str:
    text = " ".join(_ANY_ANNOTATION.sub("", text).split())
    return text[:1].upper() + text[1:]


def annotated_parts(body: str) -> tuple[list[tuple[str, str, str]], str]:
    """(thought, expression, written value) per annotation, and the text after the last one.

    A line with two annotations is cut after the value printed behind the first, so each
    calculation gets its own piece of the sentence; lines without annotations are carried into
    the next thought (they say what the coming calculation is about).
    """
    parts: list[tuple[str, str, str]] = []
    pending = ""
    for line in body.splitlines():
        matches = list(_ANNOTATION.finditer(line))
        if not matches:
            pending = f"{pending} {line}"
            continue
        cut = 0
        for i, m in enumerate(matches):
            shown = _SHOWN.match(line, m.end())
            end = len(line) if i == len(matches) - 1 else (shown.end() if shown else m.end())
            parts.append((_clean(f"{pending} {line[cut:end]}"), m.group(1), m.group(2)))
            pending, cut = "", end
    return parts, _clean(pending)


def solution_demonstration(question: str, answer: str, source: str | None = None) -> Demonstration:
    """A GSM8K gold solution as a worked trajectory; SkipRow(reason) when it cannot be one."""
    gold, _, _ = parse_solution(answer)
    parts, trailing = annotated_parts(answer.rsplit("####", 1)[0])
    if not parts:
        raise SkipRow("no calculator annotations")
    steps: list[DemoStep] = []
    carried = ""
    for thought, raw, written in parts:
        expr = normalize_expression(raw)
        if _BARE.fullmatch(expr):  # `<<14=14>>` restates a number: its text leads into the next step
            carried = f"{carried} {thought}".strip()
            continue
        if not _PLAIN.fullmatch(expr):
            raise SkipRow("annotation is not arithmetic")
        thought, carried = f"{carried} {thought}".strip(), ""
        if any(s.query == expr for s in steps):
            raise SkipRow("annotation repeats an expression")  # the rollout would flag it as malformed
        printed = evaluate(expr)
        if printed.startswith("error"):
            raise SkipRow("calculator error")
        if not agrees(printed, written):
            raise SkipRow("calculator disagrees with annotation")
        steps.append(DemoStep(thought or f"I compute {expr}.", "math_exp", expr, printed))
    if not steps:
        raise SkipRow("no calculations")
    steps.append(DemoStep(" ".join(filter(None, (carried, trailing, f"The answer is {gold}."))), "answer", gold))
    text = " ".join(s.thought for s in steps)
    if any(f"<{t}>" in text or f"</{t}>" in text for t in TAGS):
        raise SkipRow("action tag in text")  # it would be parsed as the demonstration's action
    return Demonstration(question.strip(), tuple(steps), source)


def _row_id(row: dict, question: str) -> str:
    return str(row.get("id") or f"gsm8k-{stable_id(question)}")


def row_demonstration(row: dict) -> Demonstration:
    question = str(need(row, "question"))
    return solution_demonstration(question, str(need(row, "answer")), _row_id(row, question))


def is_preferred(demo: Demonstration) -> bool:
    chars = len(demo.question) + sum(len(s.thought) for s in demo.steps)
    return len(demo.steps) - 1 in PREFERRED_STEPS and chars <= PREFERRED_CHARS


def demonstration_pool(rows: Sequence[dict], size: int, seed: int, skipped: Counter) -> list[Demonstration]:
    """Demonstrations from the first rows in `seed` order: the preferred (short) ones first, then
    the rest, each group in row order. Reading stops once `size` preferred ones are found (or after
    SCAN_ROWS rows); unusable rows are counted in `skipped` by reason."""
    preferred: list[Demonstration] = []
    others: list[Demonstration] = []
    for n, i in enumerate(sample(len(rows), seed, shuffle=True)):
        if n >= SCAN_ROWS or len(preferred) >= size:
            break
        try:
            demo = row_demonstration(dict(rows[i]))
        except SkipRow as why:
            skipped[str(why)] += 1
            continue
        (preferred if is_preferred(demo) else others).append(demo)
    return preferred + others


class GSM8K(BaseTask):
    name = "gsm8k"
    kind = "math"
    default_tools = ("calculator",)
    max_steps = 10
    hub_path = "openai/gsm8k"
    hub_config = "main"
    default_grader = "numeric"
    demo_sources = ("builtin", "train", "similar")

    def __init__(self, data_cfg: DataConfig | None = None):
        super().__init__(data_cfg)
        self.demo_skip_reasons: Counter = Counter()  # reason -> train rows unusable as demonstrations
        self._demo_pools: dict[int, list[Demonstration]] = {}  # pool size -> pool

    def parse_row(self, row: dict, index: int) -> Example:
        question = str(need(row, "question"))
        gold, steps, solution = parse_solution(str(need(row, "answer")))
        return Example(_row_id(row, question), question.strip(), gold, meta={"steps": steps, "solution": solution})

    def demonstrations(self, example: Example, n: int) -> list[Demonstration]:
        """`n` demonstrations built from train rows (the same for every question, except that a
        question never gets its own); a one-line ValueError when the split has too few usable."""
        if n <= 0 or self.cfg.demonstrations_from == "builtin":
            return super().demonstrations(example, n)
        rows = self.rows("train")
        if self.cfg.demonstrations_from == "similar":
            def pool() -> list[Demonstration]:
                self.demo_skip_reasons = Counter()
                return demonstration_pool(rows, SCAN_ROWS, self.cfg.seed, self.demo_skip_reasons)

            return self.nearest_demonstrations(example, n, pool)
        if n + 1 not in self._demo_pools:  # one spare: the asked question may be in the pool
            self.demo_skip_reasons = Counter()
            self._demo_pools[n + 1] = demonstration_pool(rows, n + 1, self.cfg.seed, self.demo_skip_reasons)
        chosen = [d for d in self._demo_pools[n + 1] if not same_question(d, example)][:n]
        if len(chosen) < n:
            skips = ", ".join(f"{k}: {v}" for k, v in self.demo_skip_reasons.most_common()) or "none"
            raise ValueError(
                f"data.demonstrations_from: only {len(chosen)} usable demonstrations in the first "
                f"{min(len(rows), SCAN_ROWS)} train rows (skipped: {skips}); lower generate.demonstrations"
            )
        return chosen
