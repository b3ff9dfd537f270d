"""`swirl-lite bench judge`: how accurate and how fast each judge is, on steps whose label we know.

The labelled set is built here, not taken from a dataset:
- math: a seeded generator of two-step word problems; per problem a correct and a corrupted first
  calculation (wrong operation), a correct and a repeated second calculation, a right and a wrong
  final answer (6 steps, half GOOD);
- QA: eight two-hop questions we wrote, each with two gold and two distractor paragraphs; per
  question a helpful and an unrelated first search, a helpful second search and a repeat of the first,
  a right and a wrong answer.
Each judge (the reference judge, then every local model in each mode) scores every step (generate
mode a stratified subset, it is slow); the table gives accuracy per action kind, the share of steps
called GOOD (a judge that says GOOD to everything scores 50%), AUC of the graded score, invalid
replies, agreement with the reference judge, and steps/s at the same batch size.
"""

from __future__ import annotations

import random
import time
from typing import Any

from swirl_lite.schema import SubTrajectory, Verdict
from swirl_lite.tasks.loading import doc_id
from swirl_lite.tasks.prompts import build_prompt

Item = tuple[SubTrajectory, bool]  # a step and whether it is GOOD


def _step(kind: str, question: str, history: list[tuple[str, str, str]], tag: str, query: str,
          gold: str, meta: dict, sid: str) -> SubTrajectory:
    """A sub-trajectory whose state is the real prompt plus `history` [(tag, query, result)]."""
    messages = build_prompt(kind, question, 10 if kind == "math" else 5)
    thought = {"math_exp": "I use the calculator.", "search_query": "I search for it.", "answer": "I give the answer."}
    for t, q, result in history:
        messages += [{"role": "assistant", "content": f"{thought[t]}\n<{t}>{q}</{t}>"},
                     {"role": "user", "content": f"{q} -> {result}"}]
    action = f"{thought[tag]}\n<{tag}>{query}</{tag}>"
    meta = {**meta, "question": question, "prompt_len": 1}
    return SubTrajectory(sid, sid.rsplit("/", 1)[0], sid.split("#")[0], len(history), tag, messages,
                         [{"role": "assistant", "content": action}], task="bench", gold=gold, meta=meta)


def _problem(r: random.Random) -> tuple[str, list[tuple[str, int, str]]]:
    """(question, [(correct expression, value, corrupted expression)] for two steps)."""
    name = r.choice(("Ana", "Ben", "Chloe", "Dev", "Emma", "Hiro", "Maya", "Omar", "Priya", "Sam"))
    kind = r.randrange(4)
    if kind == 0:
        a, p = r.randint(2, 6), r.randint(3, 9)
        bill = next(b for b in (20, 50, 100) if b > a * p)
        q = f"{name} buys {a} pens at ${p} each and pays with a ${bill} bill. How much change does {name} get?"
        return q, [(f"{a} * {p}", a * p, f"{a} + {p}"), (f"{bill} - {a * p}", bill - a * p, f"{bill} + {a * p}")]
    if kind == 1:
        rows, cols, k = r.randint(3, 9), r.randint(3, 9), r.randint(2, 9)
        q = f"A garden has {rows} rows of {cols} plants. {name} pulls out {k} plants. How many plants are left?"
        return q, [(f"{rows} * {cols}", rows * cols, f"{rows} + {cols}"), (f"{rows * cols} - {k}", rows * cols - k, f"{rows * cols} + {k}")]
    if kind == 2:
        w, h, d = r.randint(6, 15), r.randint(2, 6), r.randint(2, 5)
        q = f"{name} earns ${w} an hour and works {h} hours on each of {d} days. How much does {name} earn?"
        return q, [(f"{h} * {d}", h * d, f"{h} + {d}"), (f"{h * d} * {w}", h * d * w, f"{h * d} + {w}")]
    k, each = r.randint(2, 6), r.randint(3, 9)
    a = r.randint(2, k * each - 2)
    q = f"{name} has {a} stickers and gets {k * each - a} more, then shares them equally among {k} friends. How many does each friend get?"
    return q, [(f"{a} + {k * each - a}", k * each, f"{a} - {k * each - a}"), (f"{k * each} / {k}", each, f"{k * each} * {k}")]


def math_items(n: int, seed: int = 0) -> list[Item]:
    r, items = random.Random(seed), []
    for i in range(n):
        q, ((e1, v1, b1), (e2, v2, _)) = _problem(r)
        meta, gold, base = {"steps": [v1, v2]}, str(v2), f"m{i}#0/"
        done1 = [("math_exp", e1, str(v1))]
        done2 = done1 + [("math_exp", e2, str(v2))]
        wrong = str(v2 + r.choice((-3, -2, -1, 1, 2, 3, 10)))
        for j, (hist, tag, query, good) in enumerate([
            ([], "math_exp", e1, True), ([], "math_exp", b1, False),
            (done1, "math_exp", e2, True), (done1, "math_exp", e1, False),
            (done2, "answer", str(v2), True), (done2, "answer", wrong, False),
        ]):
            items.append((_step("math", q, hist, tag, query, gold, meta, f"{base}{j}"), good))
    return items


# question, answer, wrong answer, (helpful query 1, helpful query 2, unrelated query),
# paragraphs (title, text); the first two are the gold supporting ones.
QA_SET = [
    ("Which river flows through the city where the Eiffel Tower stands?", "Seine", "Thames",
     ("Eiffel Tower city", "Paris river", "Big Ben bell London"),
     [("Eiffel Tower", "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France."),
      ("Paris", "Paris is the capital of France. The river Seine runs through the centre of the city."),
      ("Big Ben", "Big Ben is the nickname of the great bell of the clock at the Palace of Westminster in London."),
      ("River Thames", "The River Thames flows through London and southern England into the North Sea.")]),
    ("What language is mainly spoken in the country whose capital is Lima?", "Spanish", "Portuguese",
     ("Lima capital of which country", "Peru language", "Andes mountain range"),
     [("Lima", "Lima is the capital and largest city of Peru, on the Pacific coast."),
      ("Peru", "Peru is a country in western South America. Its most widely spoken language is Spanish."),
      ("Brazil", "Brazil is the largest country in South America; its official language is Portuguese."),
      ("Andes", "The Andes are the longest continental mountain range in the world.")]),
    ("In which year was the author of Pride and Prejudice born?", "1775", "1813",
     ("Pride and Prejudice author", "Jane Austen born", "Moby-Dick whale novel"),
     [("Pride and Prejudice", "Pride and Prejudice is an 1813 novel by the English writer Jane Austen."),
      ("Jane Austen", "Jane Austen was an English novelist, born on 16 December 1775."),
      ("Charles Dickens", "Charles Dickens was an English novelist born in 1812, author of Oliver Twist."),
      ("Moby-Dick", "Moby-Dick is an 1851 novel by Herman Melville about the hunt for a whale.")]),
    ("What is the currency of the country where Mount Fuji is located?", "yen", "won",
     ("Mount Fuji country", "Japan currency", "Kilimanjaro volcano Tanzania"),
     [("Mount Fuji", "Mount Fuji is the highest mountain in Japan, on the island of Honshu."),
      ("Japan", "Japan is an island country in East Asia. Its currency is the yen."),
      ("South Korea", "South Korea is a country in East Asia whose currency is the won."),
      ("Kilimanjaro", "Mount Kilimanjaro is a dormant volcano in Tanzania and the highest mountain in Africa.")]),
    ("Who painted the most famous artwork kept in the Louvre?", "Leonardo da Vinci", "Vincent van Gogh",
     ("Louvre most famous artwork", "Mona Lisa painter", "Prado Museum Madrid"),
     [("Louvre", "The Louvre in Paris is the most visited museum in the world; its most famous artwork is the Mona Lisa."),
      ("Mona Lisa", "The Mona Lisa is a half-length portrait painted by the Italian artist Leonardo da Vinci."),
      ("The Starry Night", "The Starry Night is an oil painting by Vincent van Gogh, kept in New York."),
      ("Prado Museum", "The Prado Museum in Madrid holds a large collection of Spanish art.")]),
    ("What is the capital of the country that won the 2010 FIFA World Cup?", "Madrid", "Amsterdam",
     ("2010 World Cup winner", "Spain capital", "Summer Olympic Games host city"),
     [("2010 FIFA World Cup", "The 2010 FIFA World Cup was held in South Africa; Spain beat the Netherlands in the final."),
      ("Spain", "Spain is a country in southwestern Europe. Its capital is Madrid."),
      ("Netherlands", "The Netherlands is a country in northwestern Europe; its capital is Amsterdam."),
      ("Olympic Games", "The Summer Olympic Games are held every four years in a different host city.")]),
    ("What is the largest moon of the planet known as the Red Planet?", "Phobos", "Titan",
     ("Red Planet name", "moons of Mars", "Jupiter largest planet"),
     [("Red Planet", "The name Red Planet refers to Mars, whose surface is rich in reddish iron oxide."),
      ("Moons of Mars", "Mars has two small moons, Phobos and Deimos; Phobos is the bigger one."),
      ("Titan", "Titan is the largest moon of Saturn and has a thick atmosphere."),
      ("Jupiter", "Jupiter is the largest planet in the Solar System.")]),
    ("Which ocean lies off the coast of the state whose capital is Sacramento?", "Pacific", "Atlantic",
     ("Sacramento capital of which state", "California coast ocean", "Texas largest state area"),
     [("Sacramento", "Sacramento is the capital city of the US state of California."),
      ("California", "California is a state on the west coast of the United States, on the Pacific Ocean."),
      ("Florida", "Florida is a US state between the Gulf of Mexico and the Atlantic Ocean."),
      ("Texas", "Texas is the second largest US state by area; its capital is Austin.")]),
]


def qa_items() -> list[Item]:
    items = []
    for i, (q, answer, wrong, (q1, q2, bad), paras) in enumerate(QA_SET):
        paragraphs = [{"id": doc_id(t, x), "title": t, "text": x, "supporting": k < 2} for k, (t, x) in enumerate(paras)]
        meta = {"paragraphs": paragraphs}
        p1, p2 = (f"{t}: {x}" for t, x in paras[:2])
        done1 = [("search_query", q1, p1)]
        done2 = done1 + [("search_query", q2, p2)]
        for j, (hist, tag, query, good) in enumerate([
            ([], "search_query", q1, True), ([], "search_query", bad, False),
            (done1, "search_query", q2, True), (done1, "search_query", q1, False),
            (done2, "answer", answer, True), (done2, "answer", wrong, False),
        ]):
            items.append((_step("qa", q, hist, tag, query, answer, meta, f"h{i}#0/{j}"), good))
    return items


# ---------------------------------------------------------------- measuring


def auc(scores: list[float], truth: list[bool]) -> float:
    """Probability that a GOOD step scores above a BAD one (ties count half)."""
    pos = [s for s, t in zip(scores, truth, strict=True) if t]
    neg = [s for s, t in zip(scores, truth, strict=True) if not t]
    if not pos or not neg:
        return float("nan")
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def measure(scorer: Any, items: list[Item], reference: dict[str, Verdict] | None = None) -> dict:
    subs, truth = [s for s, _ in items], [t for _, t in items]
    start = time.perf_counter()
    verdicts = scorer.score(subs)
    seconds = time.perf_counter() - start
    said = [v.label == "GOOD" for v in verdicts]
    row: dict[str, Any] = {
        "n": len(items),
        "accuracy": sum(s == t for s, t in zip(said, truth, strict=True)) / len(items),
        "good_rate": sum(said) / len(items),
        "auc": auc([v.score for v in verdicts], truth),
        "invalid": sum(v.label == "invalid" for v in verdicts),
        "steps_per_s": len(items) / max(seconds, 1e-9),
        "verdicts": {v.sub_id: v for v in verdicts},
    }
    for kind in ("math_exp", "search_query", "answer"):
        pairs = [(s, t) for s, t, sub in zip(said, truth, subs, strict=True) if sub.kind == kind]
        row[f"acc_{kind}"] = sum(s == t for s, t in pairs) / len(pairs) if pairs else float("nan")
    if reference is not None:
        agree = [(reference[v.sub_id].label == "GOOD") == (v.label == "GOOD") for v in verdicts]
        row["agreement"] = sum(agree) / len(agree)
    return row


def subset(items: list[Item], n: int, seed: int = 0) -> list[Item]:
    """A seeded random subset in the original order (keeps the mix of kinds and labels)."""
    if n >= len(items):
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def run_bench(
    models: list[str], modes: list[str], n_math: int = 16, batch_size: int = 8,
    generate_limit: int = 24, max_new_tokens: int = 96, seed: int = 0,
) -> list[dict]:
    """Score the labelled set with the reference judge and each model x mode; print the table."""
    from swirl_lite.backends.scoring import HFEngine
    from swirl_lite.config import ModelConfig
    from swirl_lite.console import console, summary_table
    from swirl_lite.judges.llm import LLMJudge
    from swirl_lite.judges.reference import ReferenceJudge
    from swirl_lite.models import load_model

    items = math_items(n_math, seed) + qa_items()
    console.print(f"labelled steps: {len(items)} ({sum(t for _, t in items)} GOOD), "
                  f"{n_math} math problems and {len(QA_SET)} QA questions")
    ref = measure(ReferenceJudge(), items)
    rows = [{"judge": "reference", "mode": "-", **ref}]
    for name in models:
        loaded = load_model(ModelConfig(name=name, backend="hf"))
        engine = HFEngine(loaded.model, loaded.tokenizer, name, batch_size, max_new_tokens)
        for mode in modes:
            some = items if mode == "logprob" else subset(items, generate_limit, seed)
            with console.status(f"judging {len(some)} steps: {name} {mode}"):
                row = measure(LLMJudge(engine, mode), some, ref["verdicts"])
            rows.append({"judge": name, "mode": mode, **row})
    columns = ("judge", "mode", "n", "acc", "calc", "search", "answer", "GOOD%", "AUC", "inv", "agree", "steps/s")
    table = [
        (r["judge"], r["mode"], r["n"], _pct(r["accuracy"]), _pct(r["acc_math_exp"]),
         _pct(r["acc_search_query"]), _pct(r["acc_answer"]), _pct(r["good_rate"]), r["auc"],
         r["invalid"], _pct(r.get("agreement")), r["steps_per_s"])
        for r in rows
    ]
    console.print(summary_table(f"judge accuracy on labelled steps (batch size {batch_size})", table, columns))
    return [{k: v for k, v in r.items() if k != "verdicts"} for r in rows]


def _pct(x: float | None) -> str:
    """A share as a whole percentage; "-" when there was nothing to count (None or NaN)."""
    return "-" if x is None or x != x else f"{x:.0%}"
