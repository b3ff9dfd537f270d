"""Arithmetic: a built-in generator of small multi-step word problems (the CPU quickstart task).

Not in the paper: GSM8K is too hard for a 135M model to show learning in minutes, so this task keeps
the same shape (a word problem, calculator steps, a numeric answer) with small numbers and mostly
2-step problems (60% two steps, 30% three, 10% four). Templates are ours: shopping, sharing, rates,
wages, recipes, gardens.

Deterministic: problem i of a split is drawn from `Random(f"{seed}:{split}:{i}:{attempt}")`.
Splits never overlap: a problem belongs to the split named by a hash of its text (80% train, 10%
validation, 10% test), and a draw that lands in another split's bucket is redrawn. Duplicates inside
a split are dropped. `meta["steps"]` holds the gold intermediate values in order, `meta["exprs"]`
the calculator expressions that compute them (a problem's gold solution, `gold_demonstration`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

from swirl_lite.tasks.base import Example
from swirl_lite.tasks.common import BaseTask
from swirl_lite.tasks.prompts import Demonstration, DemoStep

NAMES = ("Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jon",
         "Kemi", "Leo", "Maya", "Nils", "Omar", "Priya", "Rosa", "Sam", "Tara", "Yusuf")
ITEMS = ("apples", "pencils", "stickers", "cookies", "marbles", "books", "cards", "eggs", "shells")
BUCKETS = {"train": range(0, 8), "validation": range(8, 9), "test": range(9, 10)}
SPLIT_NAMES = {"train": "train", "validation": "validation", "dev": "validation", "test": "test"}
DEFAULT_SIZE = 1000

Problem = tuple[str, list[int], int, list[str]]  # question, intermediate values, answer, gold expressions


def _change(r: random.Random) -> Problem:
    n, a, p = r.choice(NAMES), r.randint(2, 6), r.randint(2, 9)
    item = r.choice(("notebooks", "pens", "mugs", "plants", "toys"))
    bill = next(b for b in (10, 20, 50, 100) if b > a * p)
    q = r.choice((
        f"{n} buys {a} {item} at ${p} each and pays with a ${bill} bill. How much change does {n} get?",
        f"One of the {item} costs ${p}. {n} pays for {a} of them with ${bill}. What is the change?",
    ))
    return q, [a * p, bill - a * p], bill - a * p, [f"{a} * {p}", f"{bill} - {a * p}"]


def _share(r: random.Random) -> Problem:
    n, k, each = r.choice(NAMES), r.randint(2, 6), r.randint(2, 9)
    total = k * each
    a = r.randint(1, total - 1)
    item = r.choice(ITEMS)
    q = r.choice((
        f"{n} has {a} {item} and gets {total - a} more. {n} shares them equally among {k} friends. "
        f"How many {item} does each friend get?",
        f"{n} collects {a} {item} on Monday and {total - a} on Tuesday, then splits them equally "
        f"into {k} bags. How many {item} go in each bag?",
    ))
    return q, [total, each], each, [f"{a} + {total - a}", f"{total} / {k}"]


def _trip(r: random.Random) -> Problem:
    s, h, d = r.choice((20, 30, 40, 50, 60)), r.randint(2, 5), r.randint(5, 40)
    vehicle = r.choice(("bus", "train", "car", "boat"))
    q = r.choice((
        f"A {vehicle} travels {s} km each hour for {h} hours and then {d} km more. How many km does it travel in all?",
        f"A {vehicle} goes {d} km, then drives for {h} hours at {s} km per hour. What is the total distance in km?",
    ))
    return q, [s * h, s * h + d], s * h + d, [f"{s} * {h}", f"{s * h} + {d}"]


def _wage(r: random.Random) -> Problem:
    n, w, h, days = r.choice(NAMES), r.randint(5, 15), r.randint(2, 6), r.randint(2, 5)
    q = r.choice((
        f"{n} earns ${w} an hour and works {h} hours on each of {days} days. How much does {n} earn?",
        f"{n} works {days} days a week, {h} hours a day, for ${w} an hour. What does {n} earn in a week?",
    ))
    return q, [h * days, h * days * w], h * days * w, [f"{h} * {days}", f"{h * days} * {w}"]


def _marbles(r: random.Random) -> Problem:
    n, a, b = r.choice(NAMES), r.randint(5, 40), r.randint(5, 40)
    c = r.randint(1, a + b - 1)
    q = r.choice((
        f"A jar holds {a} red and {b} blue marbles. {n} takes out {c} marbles. How many marbles are left in the jar?",
        f"There are {a} red and {b} blue marbles in a box. After {n} removes {c}, how many remain?",
    ))
    return q, [a + b, a + b - c], a + b - c, [f"{a} + {b}", f"{a + b} - {c}"]


def _recipe(r: random.Random) -> Problem:
    base, cups, times = r.choice((6, 8, 10, 12)), r.randint(1, 4), r.randint(2, 5)
    q = r.choice((
        f"A recipe uses {cups} cups of flour for {base} muffins. How many cups are needed for {base * times} muffins?",
        f"For {base} pancakes you need {cups} eggs. How many eggs do you need for {base * times} pancakes?",
    ))
    return q, [times, times * cups], times * cups, [f"{base * times} / {base}", f"{times} * {cups}"]


def _garden(r: random.Random) -> Problem:
    n, rows, cols = r.choice(NAMES), r.randint(2, 8), r.randint(2, 8)
    picked, planted = r.randint(1, rows * cols // 2), r.randint(1, 15)
    left = rows * cols - picked
    q = (f"A garden has {rows} rows of {cols} plants. {n} pulls out {picked} plants and then plants "
         f"{planted} new ones. How many plants are in the garden now?")
    return q, [rows * cols, left, left + planted], left + planted, [
        f"{rows} * {cols}", f"{rows * cols} - {picked}", f"{left} + {planted}"]


def _bake(r: random.Random) -> Problem:
    n, trays, per, k = r.choice(NAMES), r.randint(2, 4), r.choice((6, 8, 10, 12)), r.randint(2, 5)
    total = trays * per
    eaten = total % k + k * r.randint(0, 1) or k  # a few cookies, leaving a multiple of k
    each = (total - eaten) // k
    q = (f"{n} bakes {trays} trays of {per} cookies, eats {eaten}, and shares the rest equally among "
         f"{k} friends. How many cookies does each friend get?")
    return q, [total, total - eaten, each], each, [f"{trays} * {per}", f"{total} - {eaten}", f"{total - eaten} / {k}"]


def _two_items(r: random.Random) -> Problem:
    n, a, p1, b, p2 = r.choice(NAMES), r.randint(2, 5), r.randint(1, 6), r.randint(2, 5), r.randint(1, 6)
    total = a * p1 + b * p2
    bill = next(x for x in (20, 50, 100) if x > total)
    q = (f"{n} buys {a} apples at ${p1} each and {b} melons at ${p2} each, and pays with ${bill}. "
         f"How much change does {n} get?")
    return q, [a * p1, b * p2, total, bill - total], bill - total, [
        f"{a} * {p1}", f"{b} * {p2}", f"{a * p1} + {b * p2}", f"{bill} - {total}"]


def _running(r: random.Random) -> Problem:
    n, a, b, w = r.choice(NAMES), r.randint(2, 6), r.randint(3, 10), r.randint(2, 4)
    week = 5 * a + 2 * b
    q = (f"{n} runs {a} km on each weekday and {b} km on each day of the weekend. "
         f"How many km does {n} run in {w} weeks?")
    return q, [5 * a, 2 * b, week, week * w], week * w, [f"5 * {a}", f"2 * {b}", f"{5 * a} + {2 * b}", f"{week} * {w}"]


TEMPLATES: dict[int, tuple[Callable[[random.Random], Problem], ...]] = {
    2: (_change, _share, _trip, _wage, _marbles, _recipe),
    3: (_garden, _bake),
    4: (_two_items, _running),
}
STEP_WEIGHTS = {2: 0.6, 3: 0.3, 4: 0.1}


def bucket(question: str) -> int:
    return hashlib.sha256(question.encode()).digest()[0] % 10


def generate(split: str, seed: int, index: int) -> Problem:
    """Problem `index` of `split`: deterministic given (split, seed, index)."""
    allowed = BUCKETS[split]
    for attempt in range(1000):
        r = random.Random(f"{seed}:{split}:{index}:{attempt}")
        steps = r.choices(list(STEP_WEIGHTS), weights=list(STEP_WEIGHTS.values()))[0]
        problem = r.choice(TEMPLATES[steps])(r)
        if bucket(problem[0]) in allowed:
            return problem
    raise RuntimeError("arithmetic: no problem found for this split")  # 1000 misses: ~0.9^1000


class Arithmetic(BaseTask):
    name = "arithmetic"
    kind = "math"
    default_tools = ("calculator",)
    max_steps = 10
    default_grader = "numeric"
    demo_sources = ("builtin", "train", "similar")
    POOL = DEFAULT_SIZE  # train problems that `similar` picks from

    def demonstrations(self, example: Example, n: int) -> list[Demonstration]:
        """`data.demonstrations_from`: builtin (written), train (the first train problems' gold
        solutions), similar (the train solutions nearest the question, `similar.py`)."""
        source = self.cfg.demonstrations_from
        if n <= 0 or source == "builtin":
            return super().demonstrations(example, n)
        if source == "train":
            pool = [gold_demonstration(ex) for ex in problems("train", n + 1, self.cfg.seed)]
            return [d for d in pool if d.source != example.id][:n]
        return self.nearest_demonstrations(
            example, n, lambda: [gold_demonstration(ex) for ex in problems("train", self.POOL, self.cfg.seed)]
        )

    def source(self) -> str:
        return "generated"

    def load(self, split: str, limit: int | None = None, seed: int = 0, shuffle: bool = True) -> list[Example]:
        """`limit` (default 1000) distinct problems of `split`; `shuffle` has no effect (already random)."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"data.split: arithmetic has splits {', '.join(SPLIT_NAMES)}, not {split!r}")
        self.skip_reasons.clear()
        return problems(SPLIT_NAMES[split], limit or DEFAULT_SIZE, seed)

    def gold_solution(self, example: Example) -> Demonstration | None:
        return gold_demonstration(example) if example.meta.get("exprs") else None


def gold_demonstration(example: Example) -> Demonstration:
    """A problem's gold solution as a worked trajectory: its calculator steps, then the answer."""
    from swirl_lite.tools.calculator import evaluate

    steps = [
        DemoStep("First I compute this." if i == 0 else "Next I use that result.", "math_exp", expr, evaluate(expr))
        for i, expr in enumerate(example.meta["exprs"])
    ]
    steps.append(DemoStep(f"The answer is {example.answer}.", "answer", example.answer))
    return Demonstration(example.question, tuple(steps), example.id)


def problems(split: str, n: int, seed: int) -> list[Example]:
    """The first `n` distinct problems of `split` (train, validation or test)."""
    seen: set[str] = set()
    out: list[Example] = []
    index = 0
    while len(out) < n and index < 50 * n:
        question, steps, answer, exprs = generate(split, seed, index)
        if question not in seen:
            seen.add(question)
            meta = {"steps": steps, "exprs": exprs}
            out.append(Example(f"arith-{split}-{seed}-{index}", question, str(answer), meta=meta))
        index += 1
    return out
