"""Worked demonstration trajectories, written for swirl-lite (not taken from any dataset).

They are short on purpose: a 135M-1B model reads them before every question. Calculator results
are exactly what `tools/calculator.py` prints (a test checks), and each search result is a
paragraph we wrote, shown as `Title: text` like the search tool shows one. GSM8K can build its
demonstrations from training rows instead (`data.demonstrations_from: train`, see `gsm8k.py`).
"""

from __future__ import annotations

from swirl_lite.tasks.prompts import Demonstration, DemoStep

MATH_DEMOS: tuple[Demonstration, ...] = (
    Demonstration(
        "A baker makes 36 muffins and packs them in boxes of 4. She sells each box for $5. "
        "How much money does she make?",
        (
            DemoStep("First I find how many boxes she fills.", "math_exp", "36 / 4", "9"),
            DemoStep("Each of the 9 boxes sells for $5.", "math_exp", "9 * 5", "45"),
            DemoStep("She makes $45.", "answer", "45"),
        ),
    ),
    Demonstration(
        "Tom reads 12 pages a day for 5 days and 20 pages on Saturday. His book has 100 pages. "
        "How many pages does he still have to read?",
        (
            DemoStep("Pages read so far: 5 days of 12, plus 20.", "math_exp", "12 * 5 + 20", "80"),
            DemoStep("Subtract that from the 100 pages.", "math_exp", "100 - 80", "20"),
            DemoStep("He has 20 pages left.", "answer", "20"),
        ),
    ),
    Demonstration(
        "A jacket costs $80 and is sold at 25% off. What is the sale price?",
        (
            DemoStep("The discount is 25% of $80.", "math_exp", "80 * 25 / 100", "20"),
            DemoStep("The sale price is $80 minus the discount.", "math_exp", "80 - 20", "60"),
            DemoStep("The jacket costs $60.", "answer", "60"),
        ),
    ),
)

QA_DEMOS: tuple[Demonstration, ...] = (
    Demonstration(
        "Which river flows through the capital of Hungary?",
        (
            DemoStep(
                "I need the capital of Hungary first.",
                "search_query",
                "capital of Hungary",
                "Hungary: Hungary is a landlocked country in Central Europe. "
                "Its capital and largest city is Budapest.",
            ),
            DemoStep(
                "The capital is Budapest. Now I look up its river.",
                "search_query",
                "Budapest river",
                "Budapest: Budapest is the capital of Hungary. "
                "The city lies on both banks of the Danube.",
            ),
            DemoStep("The Danube flows through Budapest.", "answer", "Danube"),
        ),
    ),
    Demonstration(
        "Who was born first, Marie Curie or Albert Einstein?",
        (
            DemoStep(
                "I need both birth dates. First Marie Curie.",
                "search_query",
                "Marie Curie born",
                "Marie Curie: Marie Curie (born 7 November 1867) was a physicist and chemist "
                "who won Nobel Prizes in two sciences.",
            ),
            DemoStep(
                "She was born in 1867. Now Albert Einstein.",
                "search_query",
                "Albert Einstein born",
                "Albert Einstein: Albert Einstein (born 14 March 1879) was a theoretical physicist "
                "best known for the theory of relativity.",
            ),
            DemoStep("1867 is earlier than 1879.", "answer", "Marie Curie"),
        ),
    ),
)

DEMOS = {"math": MATH_DEMOS, "qa": QA_DEMOS}
