"""Graders on tables of tricky cases: numeric match (math) and EM / token F1 (QA)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from swirl_lite.tasks.grading import (
    f1_score,
    grade_exact,
    grade_numeric,
    grade_qa,
    normalize_answer,
    numeric_match,
    parse_number,
    resolve_grader,
)


@pytest.mark.parametrize(
    "text, value",
    [
        ("72", 72),
        ("72 clips", 72),
        ("$1,200", 1200),
        ("1200.00", 1200),
        ("12.5%", Fraction(25, 2)),
        ("3/4", Fraction(3, 4)),
        ("-5", -5),
        ("\u22125 degrees", -5),
        ("She has -3.5 left", Fraction(-7, 2)),
        ("about 3 apples and 4 pears, so 7 fruit.", 7),  # the LAST number wins
        ("5-3", 3),  # a hyphen after a digit is not a minus sign
        (".5", Fraction(1, 2)),
        ("1,000,000 dollars", 1_000_000),
        ("The answer is 18.", 18),
        ("no number here", None),
        ("", None),
        (None, None),
        ("3/0", None),  # a zero denominator is no number
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == (Fraction(value) if value is not None else None)


@pytest.mark.parametrize(
    "prediction, gold, ok",
    [
        ("$1,200", "1200", True),
        ("1200.00", "1200", True),
        ("72 clips", "72", True),
        ("0.75", "3/4", True),
        ("3/4", "0.75", True),
        ("12.5%", "12.5", True),
        ("-8", "-8", True),
        ("12", "120", False),  # no prefix matches
        ("120", "12", False),
        ("1.2", "12", False),
        ("8", "-8", False),
        ("It is 18, not 20", "18", False),  # last number rule: 20
        ("eighteen", "18", False),
        (None, "18", False),
    ],
)
def test_numeric_match(prediction, gold, ok):
    assert numeric_match(prediction, gold) is ok
    g = grade_numeric(prediction, [gold])
    assert g.correct is ok and g.score == float(ok)


@pytest.mark.parametrize(
    "text, normal",
    [
        ("The Beatles!", "beatles"),
        ("  an   Apple, a day ", "apple day"),
        ("U.S.A.", "usa"),
        ("Theatre", "theatre"),  # "the" only as a whole word
    ],
)
def test_normalize_answer(text, normal):
    assert normalize_answer(text) == normal


@pytest.mark.parametrize(
    "prediction, golds, em, f1",
    [
        ("the Danube", ["Danube"], 1.0, 1.0),
        ("Danube river", ["Danube"], 0.0, 2 / 3),
        ("Valport City", ["Valport", "Valport City"], 1.0, 1.0),  # best over aliases
        ("yes", ["no"], 0.0, 0.0),
        ("yes it is", ["yes"], 0.0, 0.0),  # yes/no must match exactly (HotpotQA rule)
        ("Paris", ["London"], 0.0, 0.0),
        ("", ["London"], 0.0, 0.0),
    ],
)
def test_grade_qa(prediction, golds, em, f1):
    g = grade_qa(prediction, golds)
    assert g.em == em
    assert g.f1 == pytest.approx(f1)
    assert g.score == pytest.approx(f1)
    assert g.correct is (em == 1.0)


def test_grade_qa_none_prediction_is_wrong():
    g = grade_qa(None, ["x"])
    assert not g.correct and g.score == 0.0


def test_f1_counts_repeated_tokens_once_each():
    assert f1_score("new new york", "new york") == pytest.approx(0.8)


def test_exact_grader_scores_zero_one():
    assert grade_exact("Danube river", ["Danube"]).score == 0.0
    assert grade_exact("the danube", ["Danube"]).score == 1.0


def test_resolve_grader_by_name_and_import_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    assert resolve_grader("numeric")("7 cats", ["7"]).correct
    starts = resolve_grader("grader_helpers:starts_with")
    assert starts("Danube river", ["danube"]).correct
    assert not starts("Rhine", ["danube"]).correct
    half = resolve_grader("grader_helpers:half_score")
    g = half("anything", ["x"])
    assert g.score == 0.5 and not g.correct


def test_resolve_grader_errors_are_one_line():
    with pytest.raises(ValueError, match="unknown grader 'fuzzy'") as info:
        resolve_grader("fuzzy")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="cannot import"):
        resolve_grader("no_such_module_xyz:fn")
