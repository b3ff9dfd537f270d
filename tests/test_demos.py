"""GSM8K solution -> demonstration conversion, the demonstration pool, and `demonstrations_from`.

Every row here is written for this test in GSM8K's layout (not taken from the dataset).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from swirl_lite.actions import format_result, parse_action
from swirl_lite.config import DataConfig
from swirl_lite.tasks import get_task
from swirl_lite.tasks.base import Example
from swirl_lite.tasks.demos import DEMOS
from swirl_lite.tasks.gsm8k import (
    agrees,
    demonstration_pool,
    normalize_expression,
    solution_demonstration,
)
from swirl_lite.tasks.loading import SkipRow
from swirl_lite.tasks.prompts import build_prompt
from swirl_lite.tools.calculator import Calculator

TINY = Path(__file__).parent / "data" / "gsm8k_tiny.jsonl"

COMMAS = (
    "A farm has 1,200 hens and each lays 2 eggs a week. Eggs sell at 3 for $1. How much money a week?",
    "The hens lay 1,200 x 2 = <<1,200 x 2=2,400>>2,400 eggs.\n"
    "That is 2,400/3 = <<2,400/3=800>>800 groups of three, so $800.\n#### $800",
)
DECIMALS_PERCENT = (
    "A $12 book is 25% off, and Mia splits the sale price among 4 friends. How much does each pay?",
    "The discount is $12*25% = $<<$12*25%=3>>3.\n"
    "The sale price is 12-3 = <<12-3=9.0>>9.0 dollars.\n"
    "Each pays 9/4 = <<9/4=2.25>>2.25 dollars.\n#### 2.25",
)
TWO_IN_ONE_LINE = (
    "Sam has 3 bags of 4 apples and buys 5 more. Then he eats 2. How many apples are left?",
    "Sam has 3*4 = <<3*4=12>>12 apples, and 12+5 = <<12+5=17>>17 after shopping.\n"
    "He eats two.\nSo 17-2 = <<17-2=15>>15 are left.\nHe is happy.\n#### 15",
)
ROUNDED = (
    "A 10 m rope is cut into 3 equal parts and one part is halved. How long is each half?",
    "Each part is 10/3 = <<10/3=3.33>>3.33 m.\nHalf of it is 3.33/2 = <<3.33/2=1.665>>1.665 m.\n#### 1.665",
)


def test_commas_dollars_and_x_are_normalised():
    demo = solution_demonstration(*COMMAS, source="farm")
    calcs, answer = demo.steps[:-1], demo.steps[-1]
    assert [(s.tag, s.query, s.result) for s in calcs] == [("math_exp", "1200 * 2", "2400"), ("math_exp", "2400/3", "800")]
    assert calcs[0].thought == "The hens lay 1,200 x 2 = 2,400 eggs."  # annotation gone, text kept
    assert (answer.tag, answer.query, answer.result) == ("answer", "800", None)
    assert demo.source == "farm" and demo.question == COMMAS[0]


def test_decimals_percent_and_written_values_that_differ_from_the_printout():
    demo = solution_demonstration(*DECIMALS_PERCENT)
    assert [(s.query, s.result) for s in demo.steps[:-1]] == [("12*(25/100)", "3"), ("12-3", "9"), ("9/4", "2.25")]
    assert demo.steps[1].thought == "The sale price is 12-3 = 9.0 dollars."
    assert demo.steps[-1].query == "2.25"
    rounded = solution_demonstration(*ROUNDED)  # 3.33 is 10/3 rounded: accepted
    assert [s.result for s in rounded.steps[:-1]] == ["3.333333333", "1.665"]


def test_two_annotations_in_a_line_and_unannotated_lines():
    demo = solution_demonstration(*TWO_IN_ONE_LINE)
    assert [s.query for s in demo.steps] == ["3*4", "12+5", "17-2", "15"]
    assert [s.thought for s in demo.steps] == [
        "Sam has 3*4 = 12",
        "Apples, and 12+5 = 17 after shopping.",
        "He eats two. So 17-2 = 15 are left.",  # a line without annotation leads into the next step
        "He is happy. The answer is 15.",
    ]


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("She has 5 apples and eats none.\n#### 5", "no calculator annotations"),
        ("He pays 7*8 = <<7*8=54>>54.\n#### 54", "calculator disagrees with annotation"),
        ("Each gets 20/3 = <<20/3=6.66>>6.66.\n#### 6.66", "calculator disagrees with annotation"),  # truncated
        ("Each gets 5/0 = <<5/0=0>>0.\n#### 0", "calculator error"),
        ("It is <<price*2=8>>8.\n#### 8", "annotation is not arithmetic"),
        ("She has <<6=6>>6.\n#### 6", "no calculations"),
        ("A is 2*3 = <<2*3=6>>6.\nB is 2*3 = <<2*3=6>>6.\n#### 12", "annotation repeats an expression"),
        ("Say <answer>4</answer> now: 2+2 = <<2+2=4>>4.\n#### 4", "action tag in text"),
        ("It is 2+2 = <<2+2=4>>4.", "gold not parseable"),
    ],
)
def test_unusable_rows_raise_a_counted_reason(answer, reason):
    with pytest.raises(SkipRow) as info:
        solution_demonstration("Some question?", answer)
    assert str(info.value) == reason


def test_an_annotation_that_restates_a_number_leads_into_the_next_step():
    demo = solution_demonstration("Q?", "Ann has <<14=14>>14 pens.\nShe buys 14*3 = <<14*3=42>>42 more.\n"
                                        "In all <<56=56>>56.\n#### 56")
    assert [(s.tag, s.query) for s in demo.steps] == [("math_exp", "14*3"), ("answer", "56")]
    assert demo.steps[0].thought == "Ann has 14 pens. She buys 14*3 = 42 more."
    assert demo.steps[1].thought == "In all 56. The answer is 56."


def test_normalise_and_agree():
    assert normalize_expression("1,200 × $3") == "1200 * 3"
    assert normalize_expression("7 % 2") == "7 % 2"  # modulo stays modulo
    assert normalize_expression("2^3 ÷ 4") == "2**3 / 4"
    assert agrees("24", "24.0") and agrees("2400", "2,400") and agrees("3.333333333", "3.33")
    assert not agrees("6.666666667", "6.66") and not agrees("24", "25") and not agrees("error: x", "1")
    assert agrees("24.4", "24") and not agrees("2.5", "2.4") and not agrees("100", "99")


def test_demo_turns_alternate_parse_to_their_action_and_show_real_calculator_output():
    demos = [solution_demonstration(*row) for row in (COMMAS, DECIMALS_PERCENT, TWO_IN_ONE_LINE, ROUNDED)]
    messages = build_prompt("math", "What is 2 + 2?", 10, demos)
    roles = [m["role"] for m in messages]
    assert roles[0] == "user" and roles[-1] == "user"
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False))
    intended = [(s.tag, s.query) for d in demos for s in d.steps]
    turns = [m["content"] for m in messages if m["role"] == "assistant"]
    actions = [parse_action(t) for t in turns]
    assert [(a.kind, a.query) for a in actions] == intended
    assert all(a.malformed is None for a in actions)
    calculator = Calculator()
    for turn, reply in zip(messages, messages[1:], strict=False):
        action = parse_action(turn["content"]) if turn["role"] == "assistant" else None
        if action is not None and action.kind == "math_exp":
            assert reply["content"] == format_result(action.query, calculator.batch([action.query])[0])
    assert messages[-1]["content"] == "Question: What is 2 + 2?"


def _row(i: int, answer: str) -> dict:
    return {"id": f"r{i}", "question": f"Question number {i}?", "answer": answer}


def test_pool_prefers_two_to_four_calculations_and_counts_skips():
    one = "It is 2+2 = <<2+2=4>>4.\n#### 4"
    two = "It is 2+2 = <<2+2=4>>4, then 4*3 = <<4*3=12>>12.\n#### 12"
    five = "".join(f"Step {k}+1 = <<{k}+1={k + 1}>>{k + 1}.\n" for k in range(5)) + "#### 5"
    wordy = "It is 2+2 = <<2+2=4>>4" + " and so on" * 40 + ", then 4*3 = <<4*3=12>>12.\n#### 12"
    rows = [_row(0, one), _row(1, five), _row(2, "No work.\n#### 3"), _row(3, two), _row(4, "7*8 = <<7*8=50>>50\n#### 50"),
            _row(5, wordy)]
    skipped: Counter = Counter()
    pool = demonstration_pool(rows, size=3, seed=0, skipped=skipped)
    assert skipped == Counter({"no calculator annotations": 1, "calculator disagrees with annotation": 1})
    assert pool[0].source == "r3" and {d.source for d in pool[1:]} == {"r0", "r1", "r5"}
    assert demonstration_pool(rows, 3, 0, Counter()) == pool  # deterministic


def test_train_demonstrations_end_to_end_on_the_tiny_file():
    cfg = DataConfig(task="gsm8k", path=str(TINY), demonstrations_from="train")
    task = get_task(cfg)
    examples = task.load("test", shuffle=False)
    lines = [json.loads(line) for line in TINY.read_text().splitlines()]
    assert task.prompt(examples[0], 10, 0) == build_prompt("math", examples[0].question, 10)
    for ex in examples:
        messages = task.prompt(ex, max_steps=10, demonstrations=2)
        questions = [m["content"] for m in messages if m["role"] == "user" and "Question: " in m["content"]]
        assert len(questions) == 3 and questions[-1].endswith(f"Question: {ex.question}")
        assert sum(ex.question in q for q in questions) == 1  # never its own demonstration
        demo_questions = [q.split("Question: ", 1)[1] for q in questions[:-1]]
        assert all(any(q == row.get("question") for row in lines) for q in demo_questions)
        if ex.answer != "16":  # the only preferred (2-4-step) solution in the file comes first
            assert demo_questions[0].startswith("Lena picks 30 plums")
        assert task.prompt(ex, 10, 2) == messages  # deterministic
    assert task.demo_skip_reasons == Counter({"gold not parseable": 1, "missing question": 1})
    # The same question under another id is still excluded (by its text).
    lena = Example("other-id", "  Lena picks 30 plums and gives a third of them to her brother. "
                   "She then eats 4. How many plums does she have left?", "16")
    assert all("Lena" not in m["content"] for m in task.prompt(lena, 10, 3)[:-1])
    with pytest.raises(ValueError, match="only 3 usable demonstrations") as info:
        task.prompt(examples[0], 10, 4)
    assert "\n" not in str(info.value)


def test_builtin_stays_the_default_and_other_tasks_reject_train():
    assert DataConfig().demonstrations_from == "builtin"
    with pytest.raises(ValidationError):
        DataConfig(demonstrations_from="test")
    task = get_task(DataConfig(task="gsm8k", path=str(TINY)))
    ex = task.load("train", shuffle=False)[0]
    assert task.prompt(ex, 10, 2) == build_prompt("math", ex.question, 10, DEMOS["math"][:2])
    for name in ("hotpotqa", "musique"):
        with pytest.raises(ValueError) as info:
            get_task(DataConfig(task=name, demonstrations_from="train"))
        assert "data.demonstrations_from" in str(info.value) and "\n" not in str(info.value)


def test_arithmetic_gold_demonstrations_replay_through_the_calculator():
    from swirl_lite.tasks.arithmetic import gold_demonstration

    calc = Calculator()
    for ex in get_task("arithmetic").load("train", limit=200):
        demo = gold_demonstration(ex)
        calcs, answer = demo.steps[:-1], demo.steps[-1]
        assert [s.query for s in calcs] == ex.meta["exprs"] and answer.tag == "answer" and answer.query == ex.answer
        results = calc.batch([s.query for s in calcs])
        assert results == [s.result for s in calcs] and [float(r) for r in results] == ex.meta["steps"]
        assert demo.source == ex.id


def test_similar_demonstrations_are_the_nearest_train_solutions():
    task = get_task(DataConfig(task="arithmetic", demonstrations_from="similar"))
    for ex in task.load("test", limit=20):
        [demo] = task.demonstrations(ex, 1)
        # the nearest problem is a train problem of the same template: same words, other numbers
        words = lambda q: {w for w in q.split() if not any(c.isdigit() for c in w)}  # noqa: E731
        assert len(words(demo.question) & words(ex.question)) >= 0.6 * len(words(ex.question))
        assert demo.question in {e.question for e in task.load("train", limit=1000)}
    train = task.load("train", limit=5)
    assert all(d.source != train[0].id for d in task.demonstrations(train[0], 3))  # never its own solution
    assert len(task.demonstrations(train[0], 3)) == 3
    fixed = get_task(DataConfig(task="arithmetic", demonstrations_from="train"))
    tests = task.load("test", limit=2)
    assert fixed.demonstrations(tests[0], 2) == fixed.demonstrations(tests[1], 2)  # the same for every question


def test_similar_gsm8k_demonstrations_on_the_tiny_file():
    task = get_task(DataConfig(task="gsm8k", path=str(TINY), demonstrations_from="similar"))
    lena = Example("other-id", "Lena picks 40 plums and gives a third of them to her sister. How many are left?", "27")
    demos = task.demonstrations(lena, 2)
    assert len(demos) == 2 and demos[-1].question.startswith("Lena picks 30 plums")  # nearest sits last
    own = next(ex for ex in task.load("train", shuffle=False) if ex.question.startswith("Lena picks 30"))
    assert all(not d.question.startswith("Lena picks 30") for d in task.demonstrations(own, 3))
