"""Scorers built on other scorers: the `mix` of reference and LLM judge, and format credit.

Both are departures from the paper for small policies (see each class).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from swirl_lite.actions import TAGS
from swirl_lite.judges.prompts import JudgeView, view_of
from swirl_lite.judges.reference import (
    CALCULATE,
    SEARCH,
    bare,
    calculate,
    match_paragraph,
    operands,
    same_value,
)
from swirl_lite.schema import SubTrajectory, Verdict
from swirl_lite.tasks.grading import parse_number


class MixScorer:
    """`judge.kind: mix`: weight x reference + (1 - weight) x LLM; GOOD when the mix is >= 0.5."""

    def __init__(self, reference: Any, llm: Any, weight: float):
        self.reference, self.llm, self.weight = reference, llm, weight
        self.identity = f"mix:{weight:g}:{reference.identity}+{llm.identity}"

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        out = []
        for ref, llm in zip(self.reference.score(subs), self.llm.score(subs), strict=True):
            score = self.weight * ref.score + (1 - self.weight) * llm.score
            why = f"reference {ref.score:.2f} ({ref.rationale}); llm {llm.label} {llm.score:.2f}"
            out.append(Verdict(ref.sub_id, self.identity, "GOOD" if score >= 0.5 else "BAD", score, why))
        return out


def _calculated(view: JudgeView) -> list:
    """The values the trajectory's earlier calculations returned (unparsable results left out)."""
    values = (parse_number(p.result) for p in view.prior if p.kind == CALCULATE and p.result)
    return [v for v in values if v is not None]


def usable_new_step(view: JudgeView) -> bool:
    """One well-formed tool call that does something new: not a repeated query, and for a calculation
    an expression that evaluates, has an operator, uses only numbers the problem or an earlier result
    gave, and gives a value no earlier result had. An answer never earns format credit: a wrong
    answer is wrong, and crediting it was measured to teach a 135M policy to answer at once."""
    if view.kind in ("none", "answer") or view.malformed is not None:
        return False
    if any(p.kind == view.kind and p.query == view.query for p in view.prior):
        return False
    if view.kind != CALCULATE:
        return True
    query = view.query or ""
    value = calculate(query)
    if value is None or bare(query):
        return False  # an error, or a bare number copied from a result
    known = set(operands(view.question)) | {n for p in view.prior if p.result for n in operands(p.result)}
    if not set(operands(query)) <= known:
        return False  # a number from nowhere
    return not any(same_value(value, e) for e in _calculated(view))


def gold_solution_done(sub: SubTrajectory, view: JudgeView) -> bool:
    """The trajectory (`view` of `sub`) already has the gold answer as a result, or as many
    calculations as the gold solution has steps (`meta["steps"]`), or (QA) has retrieved every gold
    supporting paragraph (`meta["paragraphs"]`); False when the sub carries none of these."""
    paragraphs = sub.meta.get("paragraphs") or []
    supporting = {str(p.get("id", p.get("title"))) for p in paragraphs if p.get("supporting")}
    if supporting:
        found = (match_paragraph(p.result, paragraphs) for p in view.prior if p.kind == SEARCH)
        return supporting <= {str(f.get("id", f.get("title"))) for f in found if f is not None}
    gold = parse_number(str(sub.gold)) if sub.gold not in (None, "") else None
    if gold is not None and any(same_value(v, gold) for v in _calculated(view)):
        return True
    steps = sub.meta.get("steps") or []
    return bool(steps) and sum(p.kind == CALCULATE for p in view.prior) >= len(steps)


class FormatCredit:
    """`judge.format_credit`: a usable new step scores at least `credit` (< 0.5, so its label stays).

    With a sparse judge (the reference judge on a 135M policy: ~3% of sampled actions GOOD) most
    GRPO groups score all zeros and give no gradient; a small credit for the format separates a
    tag-less ramble from a wrong but usable step, and the judge's 1.0 still dominates. Only steps
    that do something new earn it (`usable_new_step`): crediting every well-formed tag was measured
    to teach the 135M policy to recompute its last result forever instead of answering, and
    crediting wrong answers to answer at once with a number from nowhere.

    With `gold` (the reference judge, which reads gold anyway), a calculation also earns no credit
    once the gold solution is done: an earlier result already equals the gold answer, or the
    trajectory has made as many calculations as the gold solution has steps; a search none once
    every gold supporting paragraph has been retrieved (only answering is left). Without this, 80 GRPO
    steps taught the 135M policy to keep calculating ("18 + 5", "23 + 5", ...) instead of answering:
    held-out accuracy 13/48 -> 0/48 (learn-cpu, measured).

    With `gold`, on QA, the credit moves to answering once every gold paragraph has been read: a
    well-formed answer there earns it, right or wrong (a right one scores 1 anyway), and a search
    nothing. Without this, wrong answers and searches both scored 0 in those states, so a group of
    them carried no gradient once the policy answered less; in learn-cpu-search (60 steps) its share of
    answers fell from 40% to ~0 and it searched to the step cap (README, "Learn to search on CPU").
    Math keeps its measured rule (no answer credit): the calculations count does not say that the
    answer is in view the way a read paragraph does.
    """

    def __init__(self, inner: Any, credit: float, gold: bool = False, tags: tuple[str, ...] | None = None):
        self.inner, self.credit, self.gold = inner, credit, gold
        self.tags = tags or TAGS  # the run's action tags (`tools.base.action_tags`)
        self.identity = f"{inner.identity}+format>={credit:g}{'-until-gold-then-answer' if gold else ''}"

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        out = []
        for sub, v in zip(subs, self.inner.score(subs), strict=True):
            view = view_of(sub, self.tags) if v.score < self.credit else None
            why = self._credit(sub, view) if view is not None else None
            if why is not None:
                v = replace(v, score=self.credit, rationale=f"{v.rationale}; {why}")
            out.append(replace(v, judge=self.identity))
        return out

    def _credit(self, sub: SubTrajectory, view: JudgeView) -> str | None:
        """Why this step earns the credit, or None when it does not."""
        if not (self.gold and gold_solution_done(sub, view)):
            return "usable new step" if usable_new_step(view) else None
        answering = view.kind == "answer" and view.malformed is None and bool((view.query or "").strip())
        qa = any(p.get("supporting") for p in sub.meta.get("paragraphs") or ())  # done = every gold paragraph read
        return "an answer once every gold paragraph is read" if answering and qa else None
