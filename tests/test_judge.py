"""Judges: strict verdict parsing, logprob/generate on a tiny model, the policy's adapter, the
OpenAI engine (mocked transport), the reference judge on hand-made steps, mixing and the cache."""

from __future__ import annotations

import json
import math

import pytest

from swirl_lite.backends.scoring import HFEngine, OpenAIEngine, parse_verdict
from swirl_lite.config import OpenAIEndpoint, Recipe
from swirl_lite.judges import CachedScorer, FormatCredit, MixScorer, VerdictCache, build_scorer
from swirl_lite.judges.llm import LLMJudge
from swirl_lite.judges.prompts import view_of
from swirl_lite.judges.reference import ReferenceJudge, bare, operands
from swirl_lite.schema import SubTrajectory, Verdict

MATH_Q = "Question: Ana buys 3 pens at $4 each and pays with $20. How much change does she get?"


def sub(question: str, history: list[tuple[str, str]], action: str, meta: dict, gold="8", sid="t#0/0"):
    """A sub-trajectory: prompt + earlier (assistant turn, tool result) pairs + the action to judge."""
    prompt = [{"role": "user", "content": f"Instructions.\n\n{question}"}]
    for turn, result in history:
        prompt += [{"role": "assistant", "content": turn}, {"role": "user", "content": result}]
    return SubTrajectory(sid, sid.split("/")[0], "q", len(history), "", prompt,
                         [{"role": "assistant", "content": action}], gold=gold, meta=meta)


def math_sub(history, action, sid="t#0/0"):
    return sub(MATH_Q, history, action, {"steps": [12, 8]}, sid=sid)


# ---------------------------------------------------------------- prompts and parsing


def test_parse_verdict_is_strict():
    assert parse_verdict("The query helps.\nVerdict: GOOD") == "GOOD"
    assert parse_verdict("**Verdict:** bad.") == "BAD"
    assert parse_verdict("I think it is GOOD") == "invalid"  # no verdict line
    assert parse_verdict("Verdict: GOOD\nVerdict: BAD") == "invalid"  # two verdicts that disagree
    assert parse_verdict("Verdict: maybe") == "invalid"
    assert parse_verdict("Verdict: YES", ("YES", "NO")) == "YES"


def test_view_keeps_only_the_trajectorys_own_steps():
    s = math_sub([("Cost.\n<math_exp>3 * 4</math_exp>", "3 * 4 -> 12")], "Change.\n<math_exp>20 - 12</math_exp>")
    view = view_of(s)
    assert view.question.startswith("Ana buys 3 pens")
    assert [(p.kind, p.query, p.result) for p in view.prior] == [("math_exp", "3 * 4", "12")]
    assert (view.kind, view.query, view.thought) == ("math_exp", "20 - 12", "Change.")


# ---------------------------------------------------------------- reference judge


def test_reference_math_steps():
    judge = ReferenceJudge()
    first = [("Cost.\n<math_exp>3 * 4</math_exp>", "3 * 4 -> 12")]
    subs = [
        math_sub([], "<math_exp>3 * 4</math_exp>"),  # gold step 12
        math_sub([], "<math_exp>3 + 4</math_exp>"),  # 7: not a gold step
        math_sub(first, "<math_exp>20 - 12</math_exp>"),  # 8: next gold step
        math_sub(first, "<math_exp>4 * 3</math_exp>"),  # 12 again: already computed
        math_sub(first, "<answer>8</answer>"),
        math_sub(first, "<answer>12</answer>"),
        math_sub([], "I am not sure what to do."),  # malformed
        math_sub([], "<math_exp>3 * </math_exp>"),  # does not evaluate
    ]
    scores = [v.score for v in judge.score(subs)]
    assert scores == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def test_grounded_calculations_compute_from_numbers_in_view():
    """`judge.grounded`: the gold value typed as a bare number, or reached with numbers from nowhere
    (a demonstration's), is no step; the question's numbers, earlier results and the gold solution's
    own constants (GSM8K's annotations: a week's 7 days) are."""
    first = [("Cost.\n<math_exp>3 * 4</math_exp>", "3 * 4 -> 12")]
    subs = [
        math_sub([], "<math_exp>12</math_exp>"),  # the gold step, typed: no calculation
        math_sub([], "<math_exp>24 / 2</math_exp>"),  # 12, but 24 is nobody's number
        math_sub([], "<math_exp>$3 * 4</math_exp>"),  # the question's numbers
        math_sub(first, "<math_exp>20 - 12</math_exp>"),  # an earlier result
        math_sub(first, "<math_exp>-8</math_exp>"),  # a sign is no calculation either
        math_sub(first, "<answer>8</answer>"),  # answers are unchanged
        sub("Question: Ana walks 2 km a day. How far in a week?", [], "<math_exp>2 * 7</math_exp>",
            {"steps": [14], "solution": "2 * 7 = <<2*7=14>>14 km\n#### 14"}, gold="14"),
        sub("Question: Ana walks 2 km a day. How far in a week?", [], "<math_exp>2 * 7</math_exp>",
            {"steps": [14], "exprs": ["2 * 7"]}, gold="14"),
    ]
    plain, grounded = ReferenceJudge(), ReferenceJudge(grounded=True)
    assert [v.score for v in plain.score(subs)] == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    verdicts = grounded.score(subs)
    assert [v.score for v in verdicts] == [0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert verdicts[0].rationale == "no calculation: a bare number"
    assert verdicts[1].rationale.startswith("uses 24, in neither the question")
    assert grounded.identity != plain.identity  # the verdict cache keeps them apart
    recipe = Recipe.model_validate({"judge": {"kind": "reference", "grounded": True}})
    assert build_scorer(recipe, None).grounded is True  # the recipe reaches the judge


def test_a_calculations_operands_are_the_numbers_written():
    """What `judge.grounded` and the format credit read of an expression, without running it."""
    assert operands("1,200 + $3") == [1200.0, 3.0]
    assert operands("20% of 50") == [20.0, 50.0]  # not the percent sugar's 100
    assert operands("12.5% * 100") == [12.5, 100.0]  # a written 100 stays
    assert operands("-8") == [8.0] and bare("-8") and bare("8")  # a sign computes nothing
    assert not bare("16 / 2") and not bare("max(3, 4)") and not bare("2(3 + 4)")
    assert not bare("3 × 4") and not bare("3 x 4")  # the calculator's sugar multiplies


PARAS = [
    {"id": "Hungary#1", "title": "Hungary", "text": "Hungary is a country in Central Europe. Its capital is Budapest.", "supporting": True},
    {"id": "Budapest#1", "title": "Budapest", "text": "Budapest lies on both banks of the river Danube.", "supporting": True},
    {"id": "Vienna#1", "title": "Vienna", "text": "Vienna is the capital of Austria, a country of concerts.", "supporting": False},
]
QA_Q = "Question: Which river flows through the capital of Hungary?"


def qa_sub(history, action):
    return sub(QA_Q, history, action, {"paragraphs": PARAS}, gold="Danube")


def test_reference_qa_steps_without_and_with_a_search_tool():
    seen = [("<search_query>capital of Hungary</search_query>", f"capital of Hungary -> Hungary: {PARAS[0]['text']}")]
    subs = [
        qa_sub([], "<search_query>Hungary capital country</search_query>"),  # supporting paragraph
        qa_sub([], "<search_query>Vienna Austria concerts</search_query>"),  # distractor
        qa_sub(seen, "<search_query>Hungary Central Europe capital</search_query>"),  # already retrieved
        qa_sub(seen, "<search_query>Budapest river banks</search_query>"),  # the second gold paragraph
        qa_sub(seen, "<answer>the Danube river</answer>"),  # F1 0.67 >= 0.5
        qa_sub(seen, "<answer>Budapest</answer>"),
    ]
    assert [v.score for v in ReferenceJudge().score(subs)] == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]

    class IdSearch:  # the search tool API: document ids of the top hits
        tag = "search_query"

        def search_ids(self, queries, k=1):
            return [["Vienna#1"] if "Vienna" in q else ["Budapest#1"] for q in queries]

    got = ReferenceJudge({IdSearch.tag: IdSearch()}).score(subs[:2])
    assert [v.label for v in got] == ["GOOD", "BAD"]


# ---------------------------------------------------------------- mixing and caching


class Fixed:
    def __init__(self, score: float, name: str):
        self.value, self.identity, self.calls = score, name, 0

    def score(self, subs):
        self.calls += len(subs)
        return [Verdict(s.id, self.identity, "GOOD" if self.value >= 0.5 else "BAD", self.value) for s in subs]


def test_mix_weights():
    s = [math_sub([], "<math_exp>3 * 4</math_exp>")]
    assert MixScorer(Fixed(1.0, "r"), Fixed(0.2, "l"), 0.25).score(s)[0].score == pytest.approx(0.25 + 0.75 * 0.2)
    assert MixScorer(Fixed(1.0, "r"), Fixed(0.0, "l"), 0.5).score(s)[0].label == "GOOD"
    assert MixScorer(Fixed(1.0, "r"), Fixed(0.0, "l"), 0.4).score(s)[0].label == "BAD"


def test_cache_hits_on_rerun_and_across_scorers(tmp_path):
    subs = [math_sub([], f"<math_exp>3 * {i}</math_exp>", sid=f"t#{i}/0") for i in range(5)]
    inner = Fixed(0.9, "judge-a")
    first = CachedScorer(inner, VerdictCache(tmp_path / "cache")).score(subs)
    again = CachedScorer(inner, VerdictCache(tmp_path / "cache"))  # a rerun: a fresh process, same file
    second = again.score(subs)
    assert inner.calls == 5 and again.hits == 5 and again.misses == 0
    assert [v.score for v in second] == [v.score for v in first]
    other = Fixed(0.1, "judge-b")  # another identity never reads judge-a's verdicts
    CachedScorer(other, VerdictCache(tmp_path / "cache")).score(subs)
    assert other.calls == 5


def test_build_scorer_reference_and_mix(tmp_path):
    recipe = Recipe.model_validate({"judge": {"kind": "reference"}})
    scorer = build_scorer(recipe, cache=tmp_path / "c")
    assert isinstance(scorer, CachedScorer) and scorer.identity.startswith("reference:")
    assert scorer.score([math_sub([], "<math_exp>3 * 4</math_exp>")])[0].label == "GOOD"


def test_format_credit_lifts_usable_new_wrong_steps_only():
    seven = ("<math_exp>3 + 4</math_exp>", "3 + 4 -> 7")
    subs = [
        math_sub([], "<math_exp>3 * 4</math_exp>"),  # gold step: 1.0 stays
        math_sub([], "<math_exp>3 + 4</math_exp>"),  # well-formed, wrong, numbers from the problem: credit
        math_sub([], "I am not sure what to do."),  # no tag: 0
        math_sub([], "Cost: <math_exp>3 + 4"),  # unclosed tag: 0
        math_sub([seven], "<math_exp>7</math_exp>"),  # copies a result: 0
        math_sub([seven], "<math_exp>4 + 3</math_exp>"),  # same value: 0
        math_sub([seven], "<math_exp>20 - 7</math_exp>"),  # new value from the problem and a result: credit
        math_sub([seven], "<answer>7</answer>"),  # wrong answer: 0
        math_sub([], "<math_exp>3 * 9</math_exp>"),  # 9 is in neither the problem nor a result: 0
        math_sub([], "<math_exp>20 - 3.5</math_exp>"),  # 3.5 is not 3: 0
    ]
    verdicts = FormatCredit(ReferenceJudge(), 0.2).score(subs)
    assert [v.score for v in verdicts] == [1.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0]
    assert {v.label for v in verdicts[1:]} == {"BAD"}  # the credit never makes a step GOOD
    recipe = Recipe.model_validate({"judge": {"kind": "reference", "format_credit": 0.2}})
    scorer = build_scorer(recipe)
    assert scorer.identity.endswith("+format>=0.2-until-gold-then-answer") and scorer.score(subs[1:2])[0].score == 0.2
    with pytest.raises(ValueError, match="format_credit"):
        Recipe.model_validate({"judge": {"format_credit": 0.5}})


def test_format_credit_with_gold_stops_once_the_gold_solution_is_done():
    """Gold steps 12 and 8 (answer 8): past them a calculation is busywork, not progress."""
    done = [("<math_exp>3 * 4</math_exp>", "3 * 4 -> 12"), ("<math_exp>20 - 12</math_exp>", "20 - 12 -> 8")]
    off_track = [("<math_exp>3 + 4</math_exp>", "3 + 4 -> 7"), ("<math_exp>20 - 7</math_exp>", "20 - 7 -> 13")]
    subs = [
        math_sub(done, "<math_exp>8 + 3</math_exp>"),  # the gold answer is in hand: calculating on earns nothing
        math_sub(done, "<answer>8</answer>"),  # the right move: 1.0
        math_sub(off_track, "<math_exp>13 - 3</math_exp>"),  # as many calculations as the gold: no more credit
        math_sub(off_track[:1], "<math_exp>20 - 7</math_exp>"),  # one of two used: still credited
        math_sub(off_track, "<answer>13</answer>"),  # math: a wrong answer earns nothing, done or not
    ]
    with_gold = FormatCredit(ReferenceJudge(), 0.2, gold=True)
    assert [v.score for v in with_gold.score(subs)] == [0.0, 1.0, 0.0, 0.2, 0.0]
    assert [v.score for v in FormatCredit(ReferenceJudge(), 0.2).score(subs)] == [0.2, 1.0, 0.2, 0.2, 0.0]
    recipe = Recipe.model_validate({"judge": {"kind": "reference", "format_credit": 0.2}})
    assert build_scorer(recipe).score(subs[:1])[0].score == 0.0  # the reference judge turns it on
    assert with_gold.identity != FormatCredit(ReferenceJudge(), 0.2).identity  # cached verdicts differ


# ---------------------------------------------------------------- LLM judges on a tiny model


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from swirl_lite.config import ModelConfig
    from swirl_lite.models import load_model

    return load_model(ModelConfig(name=tiny_model_dir, backend="hf", dtype="float32"))


def test_label_tokens_are_whole_words(tiny):
    from swirl_lite.backends.scoring import _label_token_ids

    for word in ("GOOD", "BAD", "YES", "NO"):  # " BAD" splits as " B"+"AD": " B" must not stand for BAD
        ids = _label_token_ids(tiny.tokenizer, word)
        assert ids and all(tiny.tokenizer.decode([i]).strip().upper() == word for i in ids)


def test_logprob_scores_are_probabilities_and_batch_invariant(tiny):
    subs = [math_sub([], "<math_exp>3 * 4</math_exp>"),
            math_sub([("Cost.\n<math_exp>3 * 4</math_exp>", "3 * 4 -> 12")] * 3, "<math_exp>20 - 12</math_exp>"),
            math_sub([], "no tag here")]
    judge = LLMJudge(HFEngine(tiny.model, tiny.tokenizer, "tiny", batch_size=8), "logprob")
    batched = judge.score(subs)
    assert all(0.0 <= v.score <= 1.0 for v in batched)
    assert batched[2].label == "BAD" and batched[2].score == 0.0  # malformed: BAD without a model call
    alone = judge.score(subs[:1])  # left padding must not change a row's score
    assert alone[0].score == pytest.approx(batched[0].score, abs=1e-4)


def test_generate_mode_unparsable_reply_is_invalid_not_a_crash(tiny):
    judge = LLMJudge(HFEngine(tiny.model, tiny.tokenizer, "tiny", batch_size=2, max_new_tokens=12), "generate")
    verdicts = judge.score([math_sub([], "<math_exp>3 * 4</math_exp>"), math_sub([], "<answer>8</answer>")])
    assert [v.label for v in verdicts] == ["invalid", "invalid"]  # a random model writes no verdict line
    assert all(v.score == 0.0 and v.rationale is not None for v in verdicts)


def test_policy_judging_uses_base_weights_and_leaves_adapter_enabled(tiny):
    import torch
    from peft import LoraConfig, get_peft_model

    from swirl_lite.models import LoadedModel

    base_judge = LLMJudge(HFEngine(tiny.model, tiny.tokenizer, "base"), "logprob")
    s = [math_sub([], "<math_exp>3 * 4</math_exp>")]
    base_score = base_judge.score(s)[0].score
    peft = get_peft_model(tiny.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 2.0)  # a trained-looking adapter that changes the output
    peft.train()
    ids = tiny.tokenizer("hello there", return_tensors="pt")
    with torch.no_grad():
        before = peft(**ids).logits
    recipe = Recipe.model_validate({"judge": {"model": "policy", "kind": "llm"}})
    scorer = build_scorer(recipe, LoadedModel(peft, tiny.tokenizer, "hf", "tiny"))
    assert scorer.score(s)[0].score == pytest.approx(base_score, abs=1e-5)  # judged on base weights
    with torch.no_grad():
        after = peft(**ids).logits
    assert torch.allclose(before, after)  # adapter active again
    assert peft.training  # train mode restored
    with torch.no_grad(), peft.disable_adapter():
        assert not torch.allclose(peft(**ids).logits, after)  # and the adapter does matter
    peft.unload()  # give the module-scoped tiny model back without LoRA layers


# ---------------------------------------------------------------- OpenAI-compatible endpoint


def test_openai_engine_logprob_generate_and_retry(monkeypatch):
    import httpx

    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        body = json.loads(request.content)
        if calls["n"] == 1:
            return httpx.Response(503, text="busy")  # retried
        if body.get("logprobs"):
            assert body["max_tokens"] == 1
            top = [{"token": "GOOD", "logprob": -0.2}, {"token": " BAD", "logprob": -1.8}, {"token": "x", "logprob": -3}]
            return httpx.Response(200, json={"choices": [{"logprobs": {"content": [{"top_logprobs": top}]}}]})
        return httpx.Response(200, json={"choices": [{"message": {"content": "Looks right.\nVerdict: BAD"}}]})

    cfg = OpenAIEndpoint(base_url="http://judge.test/v1", model="m", max_retries=2, concurrency=1)
    engine = OpenAIEngine(cfg, transport=httpx.MockTransport(handler))
    monkeypatch.setattr("swirl_lite.backends.openai.time.sleep", lambda s: None)
    s = [math_sub([], "<math_exp>3 * 4</math_exp>")]
    lp = LLMJudge(engine, "logprob").score(s)[0]
    assert calls["n"] == 2  # the 503 was retried
    assert lp.label == "GOOD" and lp.score == pytest.approx(1 / (1 + math.exp(-1.6)), abs=1e-3)
    assert LLMJudge(engine, "generate").score(s)[0].label == "BAD"


def test_llm_outcome_grader_and_its_cache(tmp_path):
    from swirl_lite.judges import LLMOutcomeJudge

    class Engine:
        name, calls = "fake", 0

        def classify(self, chats, labels, mode):
            assert labels == ("YES", "NO")
            Engine.calls += len(chats)
            return [("YES" if "Predicted answer: 8" in c[0]["content"] else "NO", 1.0, None) for c in chats]

    items = [("q", "8", "8"), ("q", "8", "9"), ("q", "8", None)]
    judge = LLMOutcomeJudge(Engine(), "logprob", VerdictCache(tmp_path / "c"))
    assert judge.grade(items) == [True, False, False]  # no answer is never correct, and costs no call
    assert Engine.calls == 2
    assert judge.grade(items) == [True, False, False] and Engine.calls == 2  # cached
