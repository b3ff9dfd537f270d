"""The reference judge (`judge.kind: reference`): scores a step against the gold solution, in [0, 1].

THIS DEPARTS FROM THE PAPER. SWiRL's judge (METHOD.md §3, §4) never sees gold labels: a model rates
each step from the state alone, which is what lets SWiRL learn from unlabelled questions. A small
model cannot do that (the embedded 135M model judges at chance), so this judge uses gold material
instead:
- math: a calculation is good if its value is one of the gold intermediate values (`meta["steps"]`:
  GSM8K annotations, the arithmetic task's steps) or the gold answer, not already computed in an
  earlier step; an answer is good if it equals the gold number.
- QA: a search is good if the paragraph it retrieves is a gold supporting paragraph
  (`meta["paragraphs"][i]["supporting"]`) not already retrieved; an answer is good if its token F1
  with the gold answer reaches `judge.reference_f1`.
- math, with `judge.grounded` (a departure from this judge's first version too, measured in the
  README's quickstart): a calculation counts only when it computes something (an operator or a
  function) from numbers that are in the question, an earlier result or the gold solution. A 135M
  policy typed the gold answer as a bare number (`<math_exp>8</math_exp>`) or reused a
  demonstration's numbers (`16 / 2`, the answer by coincidence); both scored as gold steps, the
  states after them were kept, and answering there was right, which taught one of three seeds to
  answer after one calculation (held-out 25/96 -> 8/96);
- a malformed action (no parsable tag) scores 0;
- a call of a tool without gold material (a user tool) scores NO_GOLD_STEPS, neither good nor bad.

When to use which: use the reference judge (or `mix`) for small policies and CPU runs, when the
training questions have gold solutions and you want a reward that is cheap and reliable. Use the LLM
judge (the paper's setting) when the data has no gold steps, or with a strong judge model; check how
far to trust it with `swirl-lite bench judge` (agreement with this judge).

Actions are re-executed here, never read from the trajectory: during RL the scorer sees freshly
sampled actions whose tool results do not exist, so the calculator runs the expression and the
search tool (the run's index, as in the filter; without one, the same BM25 over the question's own
paragraphs) retrieves the paragraph.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from swirl_lite.actions import TAGS
from swirl_lite.judges.prompts import view_of
from swirl_lite.schema import SubTrajectory, Verdict
from swirl_lite.tasks.grading import f1_score, numeric_match, parse_number
from swirl_lite.tools.base import action_tags

REFERENCE_VERSION = "r1"
NO_GOLD_STEPS = 0.5  # a call with no gold to compare against (no gold steps, a user tool) is neither good nor bad
CALCULATE, SEARCH = "math_exp", "search_query"  # the built-in tools' tags: the gold material is theirs


def calculate(expr: str) -> Fraction | float | None:
    """The value the calculator tool prints for `expr`, or None for an error."""
    from swirl_lite.tools.calculator import evaluate

    text = evaluate(expr)
    return None if text.startswith("error") else parse_number(text)


def same_value(value: Fraction | float, gold: Any) -> bool:
    """Equal within float noise, or equal to a decimal gold after rounding to its decimals."""
    g = parse_number(str(gold)) if not isinstance(gold, (int, float, Fraction)) else Fraction(gold)
    if g is None:
        return False
    if math.isclose(float(value), float(g), rel_tol=1e-6, abs_tol=1e-9):
        return True
    decimals = len(str(gold).split(".", 1)[1]) if "." in str(gold) else 0
    return 0 < decimals <= 4 and round(float(value), decimals) == float(g)


def _golds(gold: Any, meta: dict) -> list[str]:
    golds = [str(g) for g in gold] if isinstance(gold, (list, tuple)) else [str(gold)]
    return golds + [str(a) for a in meta.get("aliases", ()) or ()]


# ---------------------------------------------------------------- QA: which paragraph a result is


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def match_paragraph(result: str | None, paragraphs: list[dict]) -> dict | None:
    """The paragraph a search result shows (`Title: text`, possibly trimmed), or None."""
    if not result:
        return None
    res = _norm(result)
    for p in paragraphs:
        title, text = _norm(str(p.get("title", ""))), _norm(str(p.get("text", "")))
        head = text[:60]
        if res.startswith(f"{title}:") and head and head[: max(10, len(res) - len(title) - 2)] in res:
            return p
    for p in paragraphs:  # a tool that shows text without the title
        head = _norm(str(p.get("text", "")))[:60]
        if head and head in res:
            return p
    return None


def local_search_ids(query: str, paragraphs: list[dict]) -> list[str]:
    """The best paragraph of one question's own pool (the search tool's BM25, no disk cache): the
    fallback when the run's search tool is not given. Empty when nothing matches."""
    from swirl_lite.tasks.base import Document
    from swirl_lite.tools.search import SearchTool

    docs = [Document(str(p.get("id", p.get("title", n))), str(p.get("title", "")), str(p.get("text", "")))
            for n, p in enumerate(paragraphs)]
    if not docs:
        return []
    return SearchTool(docs, cache_dir=False).search_ids([query], 1)[0]


# ---------------------------------------------------------------- math: where a calculation's numbers come from

# Every unsigned number in a text. Not grading's number pattern: that one reads `12 / 4` as the
# fraction 3 and `-5` as negative, where an expression's operands are 12, 4 and 5.
_OPERAND = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?!\d)")
_COMPUTES = re.compile(r"\d\s*[-+*/^%]|\w\(")  # an operator after a number, or a function call
_ANNOTATION = re.compile(r"<<([^=<>]*)=")  # GSM8K's `<<48/2=24>>`: the left side is what was computed


def operands(text: str) -> list[float]:
    """The numbers written in `text`, in order, unsigned, thousands commas dropped (`$1,200` -> 1200)."""
    return [float(n) for n in _OPERAND.findall((text or "").replace(",", ""))]


def bare(query: str) -> bool:
    """A calculation that computes nothing: a number (or a signed one) with no operator or function,
    read as the calculator reads it (`3 × 4` and `3 x 4` multiply)."""
    from swirl_lite.tools.calculator import normalize

    return not _COMPUTES.search(normalize(query))


def _gold_operands(meta: dict) -> set[float]:
    """The numbers the gold solution computes with: the arithmetic task's expressions, GSM8K's
    annotations (or, without any, every number of its solution text)."""
    solution = str(meta.get("solution") or "")
    exprs = [str(e) for e in meta.get("exprs") or []] + _ANNOTATION.findall(solution)
    return {n for e in exprs for n in operands(e)} if exprs else set(operands(solution))


def ungrounded(view, meta: dict) -> str | None:
    """Why a calculation is no step of a solution (`judge.grounded`), or None when it is one: it
    computes nothing (a bare number), or it uses a number found in neither the question, an
    earlier result nor the gold solution (a demonstration's, or one made up). The format credit's
    `usable_new_step` asks the same of a step, without the gold solution."""
    query = view.query or ""
    if bare(query):
        return "no calculation: a bare number"
    earlier = (parse_number(p.result) for p in view.prior
               if p.kind == CALCULATE and p.result and not p.result.startswith("error"))
    known = set(operands(view.question)) | {float(e) for e in earlier if e is not None} | _gold_operands(meta)
    stray = next((n for n in operands(query) if n not in known), None)
    return None if stray is None else f"uses {stray:g}, in neither the question, an earlier result nor the gold solution"


# ---------------------------------------------------------------- the judge


class ReferenceJudge:
    """Scores steps against gold. `tools` are the run's ({tag: Tool}): their tags are the actions,
    and the search tool's index re-runs searches; without them, the built-in tags, and each
    question's own paragraphs are searched."""

    def __init__(self, tools: Mapping[str, Any] | None = None, f1_threshold: float = 0.5, kind: str | None = None,
                 grounded: bool = False):
        self.tools = dict(tools or {})
        self.tags = action_tags(self.tools) if tools is not None else TAGS
        self.search = self.tools.get(SEARCH)
        self.f1_threshold, self.kind = f1_threshold, kind  # kind: math | qa | None (infer)
        self.grounded = grounded  # math: a calculation must compute from numbers in view (`ungrounded`)
        self.identity = f"reference:{REFERENCE_VERSION}:f1>={f1_threshold}{':grounded' if grounded else ''}"

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        views = [view_of(s, self.tags) for s in subs]
        searches = [i for i, v in enumerate(views) if v.kind == SEARCH]
        results: dict[int, dict | None] = {}  # the paragraph each search retrieves (None: not this question's)
        queries = [views[i].query for i in searches]
        if searches and hasattr(self.search, "search_ids"):  # exact: compare document ids
            for i, ids in zip(searches, self.search.search_ids(queries, 1), strict=True):
                paragraphs = subs[i].meta.get("paragraphs") or []
                results[i] = next((p for p in paragraphs if ids and p.get("id") == ids[0]), None)
        elif searches and self.search is not None:
            for i, text in zip(searches, self.search.batch(queries), strict=True):
                results[i] = match_paragraph(text, subs[i].meta.get("paragraphs") or [])
        else:
            for i in searches:
                paragraphs = subs[i].meta.get("paragraphs") or []
                ids = local_search_ids(views[i].query or "", paragraphs)
                results[i] = next((p for p in paragraphs if ids and str(p.get("id", p.get("title"))) == ids[0]), None)
        verdicts = []
        for i, (sub, view) in enumerate(zip(subs, views, strict=True)):
            score, why = self._one(sub, view, results.get(i))
            verdicts.append(Verdict(sub.id, self.identity, "GOOD" if score >= 0.5 else "BAD", score, why))
        return verdicts

    def _one(self, sub: SubTrajectory, view, result: dict | None) -> tuple[float, str]:
        golds = _golds(sub.gold, sub.meta)
        if view.kind == "none":
            return 0.0, f"malformed action ({view.malformed})"
        if view.kind == "answer":
            if self._is_qa(sub, golds):
                f1 = max((f1_score(view.query, g) for g in golds), default=0.0)
                return float(f1 >= self.f1_threshold), f"answer F1 {f1:.2f}"
            ok = any(numeric_match(view.query, g) for g in golds)
            return float(ok), "answer equals gold" if ok else "answer differs from gold"
        if view.kind == CALCULATE:
            return self._calculation(sub, view, golds)
        if view.kind == SEARCH:
            return self._search(sub, view, result)
        return NO_GOLD_STEPS, f"no gold material for <{view.kind}> calls"

    def _is_qa(self, sub: SubTrajectory, golds: list[str]) -> bool:
        if self.kind is not None:
            return self.kind == "qa"
        return "paragraphs" in sub.meta or all(parse_number(g) is None for g in golds)

    def _calculation(self, sub: SubTrajectory, view, golds: list[str]) -> tuple[float, str]:
        value = calculate(view.query)
        if value is None:
            return 0.0, "expression does not evaluate"
        steps = list(sub.meta.get("steps") or [])
        if not steps:
            return NO_GOLD_STEPS, "no gold steps to compare with"
        why = ungrounded(view, sub.meta) if self.grounded else None
        if why is not None:
            return 0.0, why
        remaining = steps + golds  # the final value may be computed as a last calculation
        for prior in view.prior:  # each gold value can be earned once
            if prior.kind != CALCULATE:
                continue
            earlier = parse_number(prior.result) if prior.result and not prior.result.startswith("error") else None
            hit = next((g for g in remaining if earlier is not None and same_value(earlier, g)), None)
            if hit is not None:
                remaining.remove(hit)
        if any(same_value(value, g) for g in remaining):
            return 1.0, f"value {float(value):g} is a gold step"
        if any(same_value(value, g) for g in steps + golds):
            return 0.0, f"value {float(value):g} was already computed"
        return 0.0, f"value {float(value):g} is not a gold step"

    def _search(self, sub: SubTrajectory, view, para: dict | None) -> tuple[float, str]:
        paragraphs = sub.meta.get("paragraphs") or []
        if para is None:
            return 0.0, "result is none of this question's paragraphs"
        if not para.get("supporting"):
            return 0.0, f"retrieved a distractor ({para.get('title')})"
        seen = [match_paragraph(p.result, paragraphs) for p in view.prior if p.kind == SEARCH]
        if any(s is not None and s.get("id", s.get("title")) == para.get("id", para.get("title")) for s in seen):
            return 0.0, f"{para.get('title')} was already retrieved"
        return 1.0, f"retrieved supporting paragraph {para.get('title')}"
