"""Gold-answer graders: numeric match (math) and exact match / token F1 (QA).

METHOD.md §6: swirl-lite grades final answers by exact/numeric match and F1 instead of the paper's
LLM judge (§5), so these functions decide `Trajectory.correct` and the outcome filter (§3).

Numeric rule (`parse_number`): the answer is the LAST number in the text. A number may carry a
leading minus or currency sign, thousands commas (`1,200`), decimals (`1200.00`), an exponent
(`2.5e-13`, as the calculator prints extreme values), a fraction (`3/4`) and a trailing `%`. The percent sign is dropped (`12.5%` reads as 12.5) because gold answers
to "what percent" questions are written without it. Words and units around the number are ignored
("72 clips"). Numbers are compared exactly as fractions, so `12` never matches `120` and `0.75`
matches `3/4`.

QA rule: the SQuAD/HotpotQA normalisation (lower-case, drop punctuation, drop the articles a/an/the,
collapse whitespace); exact match and token F1, each the best over the gold answer and its aliases.
As in the official HotpotQA script, yes/no answers get F1 0 unless they match exactly.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

from swirl_lite.tasks.base import Grade

# A number: not glued to a preceding word/digit, optional sign and currency, thousands groups or
# plain digits, optional decimals and exponent (`1.5e+21`), optional "/denominator", optional percent.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>-?)[$€£]?"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)?(?P<dec>\.\d+)?(?P<exp>[eE][-+]?\d+(?![\w.]))?"
    r"(?:\s?/\s?(?P<den>\d+(?:\.\d+)?))?(?!\d)%?"
)
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-"})


def parse_number(text: str | None) -> Fraction | None:
    """The last number in `text` as an exact Fraction, or None when there is none."""
    if not text:
        return None
    text = text.translate(_MINUS)
    last = None
    for m in _NUMBER.finditer(text):
        if m.group("int") is None and m.group("dec") is None:
            continue
        last = m
    if last is None:
        return None
    digits = (last.group("int") or "0").replace(",", "") + (last.group("dec") or "") + (last.group("exp") or "")
    value = Fraction(digits)
    if last.group("den") is not None:
        den = Fraction(last.group("den"))
        if den == 0:
            return None
        value /= den
    if last.group("sign"):
        value = -value
    return value


def format_number(value: Fraction | float | int) -> str:
    """A gold number written plainly: `72`, `0.5`, `-3.25` (non-terminating: 10 significant digits)."""
    value = Fraction(value) if not isinstance(value, Fraction) else value
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.10g}"


def numeric_match(prediction: str | None, gold: str | Fraction | float | int) -> bool:
    """True when the last number of `prediction` equals the gold number exactly."""
    pred = parse_number(prediction)
    gold_value = parse_number(gold) if isinstance(gold, str) else Fraction(gold)
    return pred is not None and gold_value is not None and pred == gold_value


def grade_numeric(prediction: str | None, golds: list[str]) -> Grade:
    """Numeric grade against any of `golds`: correct and score are the same 0/1."""
    ok = any(numeric_match(prediction, g) for g in golds)
    return Grade(correct=ok, score=float(ok), em=float(ok), f1=float(ok))


# ---------------------------------------------------------------- QA (SQuAD / HotpotQA)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, drop punctuation and articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token F1 after normalisation; yes/no/noanswer must match exactly (official HotpotQA rule)."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    special = ("yes", "no", "noanswer")
    if (pred in special or ref in special) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    common = Counter(pred_tokens) & Counter(ref_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def grade_qa(prediction: str | None, golds: list[str]) -> Grade:
    """EM and F1, each the best over `golds`. correct = (EM == 1); score = F1."""
    if prediction is None or not golds:
        return Grade(correct=False, score=0.0, em=0.0, f1=0.0)
    em = max(exact_match(prediction, g) for g in golds)
    f1 = max(f1_score(prediction, g) for g in golds)
    return Grade(correct=em == 1.0, score=f1, em=em, f1=f1)


def grade_exact(prediction: str | None, golds: list[str]) -> Grade:
    """Exact match only (after normalisation): score is 0/1."""
    g = grade_qa(prediction, golds)
    return Grade(correct=g.correct, score=g.em or 0.0, em=g.em, f1=g.f1)


# ---------------------------------------------------------------- graders by name

GRADERS: dict[str, Callable[[str | None, list[str]], Grade]] = {
    "numeric": grade_numeric,
    "exact": grade_exact,
    "f1": grade_qa,
}


def _as_grade(value: object, where: str) -> Grade:
    if isinstance(value, Grade):
        return value
    if isinstance(value, bool):
        return Grade(correct=value, score=float(value))
    if isinstance(value, (int, float)):
        # A float is the score; "correct" means full marks, like EM for QA.
        return Grade(correct=float(value) >= 1.0, score=float(value))
    raise TypeError(f"grader {where} returned {type(value).__name__}; expected bool, float or Grade")


def resolve_grader(spec: str) -> Callable[[str | None, list[str]], Grade]:
    """A grader by name (numeric, exact, f1) or import path `module:function`.

    A user function takes (prediction, gold) for one gold string and returns a bool, a float score
    or a Grade; it is tried against every gold/alias and the best score wins.
    """
    if spec in GRADERS:
        return GRADERS[spec]
    if ":" not in spec:
        raise ValueError(f"data.grader: unknown grader {spec!r}; use {', '.join(GRADERS)} or module:function")
    from swirl_lite.imports import import_object

    fn = import_object(spec, "data.grader")

    def grade(prediction: str | None, golds: list[str]) -> Grade:
        if prediction is None:
            return Grade(correct=False, score=0.0)
        grades = [_as_grade(fn(prediction, g), spec) for g in golds]
        return max(grades, key=lambda g: (g.correct, g.score)) if grades else Grade(False, 0.0)

    return grade
