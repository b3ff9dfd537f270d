"""Backends: hf (stop strings, padding, seeds, context) on tiny models, openai against a real
llama.cpp server on loopback, vllm's clear errors, and the helpers every backend shares."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from swirl_lite.backends import (
    SamplingParams,
    cut_at_stop,
    params_count_demos,
    restore_stop,
    seed_for,
)

# ---------------------------------------------------------------- shared helpers


def test_cut_at_stop_keeps_the_earliest_stop_string():
    assert cut_at_stop("a <math_exp>1</math_exp> b </answer>", ("</answer>", "</math_exp>")) == (
        "a <math_exp>1</math_exp>", True,
    )
    assert cut_at_stop("no tag here", ("</answer>",)) == ("no tag here", False)


def test_restore_stop_closes_the_tag_a_server_cut_off():
    stop = ("</answer>", "</math_exp>")
    assert restore_stop("Think. <math_exp>2 + 3", stop) == "Think. <math_exp>2 + 3</math_exp>"
    assert restore_stop("done <answer>5</answer>", stop) == "done <answer>5</answer>"
    assert restore_stop("just prose", stop) == "just prose"
    assert restore_stop("<b>bold</b> then <answer>7", stop) == "<b>bold</b> then <answer>7</answer>"


def test_seeds_are_stable_and_distinct():
    assert seed_for(0, "q#1", 2) == seed_for(0, "q#1", 2)
    assert len({seed_for(0, "q#1", s) for s in range(50)}) == 50


def test_demonstrations_by_model_size():
    assert [params_count_demos(n) for n in (135_000_000, 1_500_000_000, 8_000_000_000, None)] == [2, 1, 0, 1]


# ---------------------------------------------------------------- hf


def bigram_model(tiny_model_dir):
    """The tiny Llama rewired to say " ok</answer>" forever: layers zeroed, so the next token
    depends only on the current one through a hand-set embedding and biased lm_head."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_lite.backends.hf import HFLLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    ok, open_, answer, close = (tok.encode(s, add_special_tokens=False)[0] for s in (" ok", "</", "answer", ">"))
    hidden = model.config.hidden_size
    with torch.no_grad():
        for p in model.model.layers.parameters():
            p.zero_()
        emb = model.model.embed_tokens.weight
        emb.zero_()
        head = torch.nn.Linear(hidden, emb.shape[0], bias=True)
        head.weight.zero_()
        head.bias.zero_()
        head.bias[ok] = 5.0  # any other context: " ok"
        for i, (cur, nxt) in enumerate(((ok, open_), (open_, answer), (answer, close), (close, ok))):
            emb[cur, i] = 1.0
            head.weight[nxt, i] = 50.0
    model.lm_head = head
    model.eval()
    return HFLLM(model, tok, max_context=256)


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_hf_stops_at_the_closing_tag_with_left_padding(tiny_model_dir):
    llm = bigram_model(tiny_model_dir)
    short, long = chat("hi"), chat("a much longer question " * 5)
    outs = llm.generate([short, long], SamplingParams(max_new_tokens=40))
    for out, conv in zip(outs, (short, long), strict=True):
        assert out.text == " ok</answer>" and out.finish_reason == "stop"
        assert out.completion_tokens == 4 and out.prompt_tokens == len(llm.prompt_ids(conv))
    [free] = llm.generate([short], SamplingParams(max_new_tokens=9, stop=()))
    assert free.finish_reason == "length" and free.completion_tokens == 9
    assert free.text.startswith(" ok</answer> ok</answer>")


def test_hf_reports_context_overflow_without_failing_the_batch(tiny_model_dir):
    llm = bigram_model(tiny_model_dir)
    outs = llm.generate([chat("word " * 300), chat("hi")], SamplingParams(max_new_tokens=16))
    assert outs[0].finish_reason == "context" and outs[0].text == "" and outs[0].prompt_tokens > 256
    assert outs[1].text == " ok</answer>"


def test_hf_sampling_is_reproducible_per_row_whatever_the_batch(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_lite.backends.hf import HFLLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    llm = HFLLM(model, tok)
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=12, stop=())
    a, b = chat("the same question"), chat("another one, longer than the first")
    [alone] = llm.generate([a], params, seeds=[7])
    _, batched = llm.generate([b, a], params, seeds=[3, 7])
    [other] = llm.generate([a], params, seeds=[8])
    assert alone.text == batched.text and alone.completion_tokens == 12
    assert other.text != alone.text
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8, stop=())
    assert llm.generate([a], greedy, seeds=[1])[0].text == llm.generate([a], greedy, seeds=[2])[0].text


def test_hf_kv_caches_reuse_each_rows_history_and_change_nothing(tiny_model_dir):
    """Step k of a multi-step rollout feeds only what is new since step k-1, and the turns are the
    ones an uncached backend gives (float64, so batched-matmul noise cannot flip a greedy pick)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_lite.backends.hf import HFLLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64).eval()
    cached, plain = HFLLM(model, tok), HFLLM(model, tok, prefix_cache=False)
    system = {"role": "system", "content": "Solve the problem step by step with the calculator tool. " * 4}
    convs = [[system, {"role": "user", "content": q}] for q in ("What is 3 + 4?", "Ana has 12 pens and buys 7 more.")]
    params = SamplingParams(temperature=0.8, max_new_tokens=10, stop=())
    previous: list[int] = []  # each row's prompt length at the step before
    for step in range(3):
        seeds = [step * 10 + i for i in range(len(convs))]
        got, want = cached.generate(convs, params, seeds), plain.generate(convs, params, seeds)
        assert [c.text for c in got] == [c.text for c in want]
        assert [c.completion_tokens for c in got] == [c.completion_tokens for c in want]
        prompts = [tuple(cached.prompt_ids(c)) for c in convs]
        if step == 0:  # only the common instructions come from a cache
            assert cached.last_cached[0] > 0 and len({p[: cached.last_cached[0]] for p in prompts}) == 1
        else:  # each row's own history (its last prompt at least) came from the row cache
            assert all(c >= n for c, n in zip(cached.last_cached, previous, strict=True))
        previous = [len(p) for p in prompts]
        for conv, out in zip(convs, got, strict=True):
            conv += [{"role": "assistant", "content": out.text}, {"role": "user", "content": f"result {step}"}]
    assert len(cached.rows.entries) == 2
    cached.generate(convs[:1], params, [0])  # a row the call does not ask for is dropped
    assert len(cached.rows.entries) == 1


def test_hf_continuous_batching_gives_the_lockstep_trajectories(tiny_model_dir):
    rounds_equal_whole_turns(tiny_model_dir)


def rounds_equal_whole_turns(model_dir: str, stop: str = "e") -> None:
    """Turns generated 4 tokens a round (rows leave and join between rounds) are the turns
    generated whole, and both are the turns generated with no row prefilled on its own: same
    seeds, same draws, same text (float64). Stopping at `stop` (any "e") makes a random model's
    turns end at very different lengths."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_lite.backends.hf import HFLLM
    from swirl_lite.rollout import rollout
    from swirl_lite.tasks import get_task
    from swirl_lite.tasks.base import Example
    from swirl_lite.tools.calculator import Calculator

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
    task, tools = get_task("arithmetic"), {"math_exp": Calculator()}
    jobs = [(Example(f"q{i}", f"What is {i} plus {i + 1}?", str(2 * i + 1)), 0) for i in range(5)]
    params = SamplingParams(temperature=0.9, max_new_tokens=20, stop=(stop,), seed=3)
    results = {}
    # forward cost 0: prefill whatever saves a position; 1e9: never prefill
    for chunk, cost in ((4, 0), (None, 0), (None, 10**9)):
        llm = HFLLM(model, tok, chunk_tokens=chunk)
        llm.FORWARD_COST_CPU = llm.FORWARD_COST = cost
        calls, prefilled = [], []
        llm._decode = _counting(llm._decode, calls.append)
        llm._feed = _counting(llm._feed, lambda args, seen=prefilled: seen.append(args[1].shape[0]))
        positions = []  # rows x tokens of every forward pass, padding included
        handle = model.model.register_forward_pre_hook(
            lambda m, a, k, seen=positions: seen.append(k["input_ids"].numel()), with_kwargs=True)
        trajs = list(rollout(llm, task, tools, jobs, max_steps=3, batch_size=3, params=params))
        handle.remove()
        turns = {t.id: [(s.text, s.completion_tokens) for s in t.steps] for t in trajs}
        # `_feed` runs the prefill groups, and in `_decode` a wide call's new tokens (none this wide here)
        results[chunk, cost] = turns, calls, sum(prefilled), sum(positions)
    (paced, paced_calls, paced_pre, _), (whole, whole_calls, whole_pre, fed), (plain, _, plain_pre, padded) = (
        results.values())
    assert paced_pre > 0 and whole_pre > 0 and plain_pre == 0  # rows joining were prefilled on their own
    assert fed < padded  # ... so the others were not padded to their prompts
    assert paced == whole == plain and len(paced) == 5
    lengths = {n for steps in whole.values() for _, n in steps}
    assert len(lengths) > 3, lengths  # turns of many lengths, so rows really left and joined
    assert len(paced_calls) > len(whole_calls)


def test_hf_prefills_a_questions_samples_once(tiny_model_dir):
    samples_prefilled_once(tiny_model_dir)


def samples_prefilled_once(model_dir: str, stop: str = "e") -> None:
    """Two samples of each question join the first round with the same prompt: the prefill runs
    each distinct prompt once, and every sample still draws its own turns, the ones generated whole
    (float64)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_lite.backends.hf import HFLLM
    from swirl_lite.rollout import rollout
    from swirl_lite.tasks import get_task
    from swirl_lite.tasks.base import Example
    from swirl_lite.tools.calculator import Calculator

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
    task, tools = get_task("arithmetic"), {"math_exp": Calculator()}
    questions = [Example(f"q{i}", f"What is {i} plus {i + 1}?", str(2 * i + 1)) for i in range(2)]
    jobs = [(ex, sample) for ex in questions for sample in range(2)]
    params = SamplingParams(temperature=0.9, max_new_tokens=12, stop=(stop,), seed=5)
    turns = {}
    for chunk in (4, None):
        llm = HFLLM(model, tok, chunk_tokens=chunk)
        llm.FORWARD_COST_CPU = llm.FORWARD_COST = 0  # prefill whatever saves a position
        prefilled = []
        llm._prefill = _counting(llm._prefill, lambda args, seen=prefilled: seen.append(len(args[0])))
        forwards = []
        handle = model.model.register_forward_pre_hook(lambda m, a, k, seen=forwards: seen.append(k["input_ids"].shape[0]),
                                                 with_kwargs=True)
        trajs = list(rollout(llm, task, tools, jobs, max_steps=2, batch_size=4, params=params))
        handle.remove()
        turns[chunk] = {t.id: [s.text for s in t.steps] for t in trajs}
        # 4 rows in the first round: the shared instructions (1 row), then the 2 distinct prompts
        assert prefilled[0] == 4 and forwards[:2] == [1, 2], forwards
    assert turns[4] == turns[None] and len(turns[4]) == 4
    assert len({tuple(v) for v in turns[4].values()}) == 4  # the samples differ


def _counting(method, before=None, added=None, llm=None):
    """`method` wrapped: `before(args)` is called first; `added(n)` gets the row-cache entries it added."""
    def wrapped(*args, **kwargs):
        if before:
            before(args)
        n = len(llm.rows.entries) if llm else 0
        out = method(*args, **kwargs)
        if added:
            added(len(llm.rows.entries) - n)
        return out
    return wrapped


def test_preallocated_cache_layer_appends_in_place_and_falls_back_when_full():
    import torch

    from swirl_lite.backends.hf import _PreallocatedLayer

    keys, values = torch.zeros(2, 1, 4, 3), torch.zeros(2, 1, 4, 3)
    layer = _PreallocatedLayer(keys, values, 1)
    steps = [torch.full((2, 1, 1, 3), float(i)) for i in (1, 2, 3)]
    for t in steps:
        k, v = layer.update(t, -t)
    assert k.data_ptr() == keys.data_ptr() and k.shape == (2, 1, 4, 3)  # written in place, no copy
    assert torch.equal(k[:, :, 1:], torch.cat(steps, dim=2)) and torch.equal(v[:, :, 1:], -torch.cat(steps, dim=2))
    k, _ = layer.update(torch.full((2, 1, 2, 3), 9.0), torch.zeros(2, 1, 2, 3))  # does not fit: concatenates
    assert k.shape == (2, 1, 6, 3) and torch.equal(k[:, :, 4:], torch.full((2, 1, 2, 3), 9.0))
    assert torch.equal(k[:, :, 1:4], torch.cat(steps, dim=2))


def test_hf_prefills_new_tokens_in_chunks_on_cpu_with_the_same_turns(tiny_model_dir, monkeypatch):
    """A call's new tokens go through the model PREFILL_CHUNK at a time (activations of 48 rows x
    ~500 tokens at once added ~0.7 GB to the quickstart's evaluation); the turns do not change."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_lite.backends.hf import HFLLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64).eval()
    widths: list[int] = []
    model.register_forward_pre_hook(lambda _m, args, kwargs: widths.append(kwargs["input_ids"].shape[1]),
                                    with_kwargs=True)
    system = {"role": "system", "content": "Solve the problem step by step with the calculator tool. " * 2}
    convs = [[system, {"role": "user", "content": q * 3}] for q in ("What is 3 + 4? ", "Ana has 12 pens, buys 7. ")]
    params = SamplingParams(temperature=0.8, max_new_tokens=6, stop=())
    whole = HFLLM(model, tok).generate(convs, params, [1, 2])
    first = widths[1]  # widths[0]: the shared instructions into the prefix cache
    widths.clear()
    monkeypatch.setattr(HFLLM, "PREFILL_CHUNK", 8)
    chunked = HFLLM(model, tok).generate(convs, params, [1, 2])
    assert first > 8 and max(widths[1:]) == 8 and sum(widths[1:-5]) == first  # then 5 one-token steps
    assert [c.text for c in chunked] == [c.text for c in whole]


def test_row_caches_move_in_and_out_of_a_batch_without_a_second_whole_copy(tiny_model_dir, monkeypatch):
    """Building a batch cache with `consume` drops each source layer once copied, and `split_rows`
    empties the batch cache layer by layer: the keys/values land where they belong either way. On
    CPU each layer's freed blocks go back to the OS at once (`memory.trim`): after training in the
    same process glibc would otherwise keep them resident (quickstart evaluation 3.83 -> 3.45 GB)."""
    import torch
    from transformers import AutoConfig

    import swirl_lite.backends.hf as hf
    from swirl_lite.backends.hf import left_padded_cache, split_rows

    trims: list[int] = []
    monkeypatch.setattr(hf, "trim", lambda device: trims.append(device.type))

    config = AutoConfig.from_pretrained(tiny_model_dir)
    n_layers = config.num_hidden_layers
    heads, dim = config.num_key_value_heads, config.hidden_size // config.num_attention_heads

    def row(n: int, base: float) -> list:
        return [(torch.full((1, heads, n, dim), base + layer), torch.full((1, heads, n, dim), -base - layer))
                for layer in range(n_layers)]

    a, b = row(3, 10.0), row(5, 20.0)
    cache = left_padded_cache(config, [a, b, a], [3, 5, 2], room=4, consume=True)
    assert a == [None] * n_layers and b == [None] * n_layers  # every source layer released
    assert len(trims) == n_layers
    keys = cache.layers[1].keys
    assert keys.shape[2] == 5 and torch.equal(keys[0, :, 2:], torch.full((heads, 3, dim), 11.0))
    assert torch.equal(keys[2, :, :3], torch.zeros(heads, 3, dim))  # left padding
    assert torch.equal(keys[2, :, 3:], torch.full((heads, 2, dim), 11.0))
    rows = split_rows(cache, [torch.tensor([2, 3, 4]), torch.tensor([0, 1, 2, 3, 4]), torch.tensor([3, 4])])
    assert all(layer.keys is None and layer.values is None for layer in cache.layers)  # batch emptied
    assert len(trims) == 2 * n_layers
    assert [r[1][0].shape[2] for r in rows] == [3, 5, 2]
    assert torch.equal(rows[1][n_layers - 1][1], torch.full((1, heads, 5, dim), -20.0 - (n_layers - 1)))
    kept = row(2, 1.0)
    left_padded_cache(config, [kept], [2], room=0)  # without `consume` the caller's rows stay
    assert all(layer is not None for layer in kept) and len(trims) == 2 * n_layers


# ---------------------------------------------------------------- vllm


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_missing_is_a_one_line_error():
    from swirl_lite.backends.vllm import check_available

    with pytest.raises(RuntimeError, match=r"pip install 'swirl-lite\[vllm\]'") as err:
        check_available()
    assert "\n" not in str(err.value)


@pytest.mark.gpu
def test_vllm_generates_with_stop_strings_and_seeds(embedded_path):
    pytest.importorskip("vllm")
    from swirl_lite.backends.vllm import VLLMLLM
    from swirl_lite.config import ModelConfig

    llm = VLLMLLM.from_config(ModelConfig(name=embedded_path, max_seq_length=1024), gpu_memory_utilization=0.3)
    params = SamplingParams(temperature=0.8, max_new_tokens=32)
    convs = [chat("Write <answer>4</answer> and stop."), chat("word " * 2000)]
    first, second = llm.generate(convs, params, seeds=[5, 6]), llm.generate(convs[:1], params, seeds=[5])
    assert first[0].text == second[0].text and first[1].finish_reason == "context"
    assert first[0].completion_tokens > 0
    llm.close()


# ---------------------------------------------------------------- openai against a real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# `python -m llama_cpp.server` with llama.cpp's extra CPU buffer types off (AMX tiles, repacked
# weights): with them, llama-cpp-python 0.3.35 and 0.3.36 segfault on the first batch of more than one
# token on a CPU with AMX (measured: a single-token prompt works, "Hello there my friend" crashes in
# decode; with use_extra_bufts off it runs). The server's CLI has no switch for it, so the model's
# default parameters are patched before the server module runs. What is tested is our client.
_SERVER_WITHOUT_EXTRA_BUFFERS = """
import runpy, sys
import llama_cpp.llama as L
default_params = L.llama_cpp.llama_model_default_params
def without_extra_buffers():
    params = default_params()
    params.use_extra_bufts = False
    return params
L.llama_cpp.llama_model_default_params = without_extra_buffers
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__")
"""


@pytest.fixture(scope="module")
def llama_server():
    """llama-cpp-python's OpenAI-compatible server on loopback, serving the embedded GGUF."""
    pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server]")
    from swirl_lite.models import embedded_gguf

    port = free_port()
    cmd = [sys.executable, "-c", _SERVER_WITHOUT_EXTRA_BUFFERS, "--model", str(embedded_gguf()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "1024", "--n_threads", "2", "--verbose", "false"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        import httpx

        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited: {proc.stderr.read().decode()[-500:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail("llama.cpp server did not start within 60 s")
            time.sleep(0.3)
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_openai_backend_against_a_real_server(llama_server):
    from swirl_lite.backends.openai import OpenAILLM

    llm = OpenAILLM(llama_server, "smollm2", concurrency=4, timeout_s=60, max_retries=1)
    params = SamplingParams(temperature=0.8, max_new_tokens=16)
    convs = [chat("Say hello."), chat("word " * 1200), chat("Count to five.")]
    outs = llm.generate(convs, params, seeds=[11, 12, 13])
    assert outs[1].finish_reason == "context"
    for out in (outs[0], outs[2]):
        assert out.prompt_tokens > 0 and 0 < out.completion_tokens <= 16 and out.text
    llm.close()


def test_openai_backend_sends_each_conversations_seed():
    """The per-conversation seed reaches the server in the request (what makes a server's sampling
    reproducible where it honours seeds). Checked on the request itself: comparing a real server's
    sampled text across calls is flaky, since llama.cpp reuses the previous request's prompt cache
    and its logits then differ in the last bits."""
    import httpx

    from swirl_lite.backends.openai import OpenAILLM

    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        reply = {"choices": [{"message": {"content": "<answer>1</answer>"}, "finish_reason": "stop"}]}
        return httpx.Response(200, json=reply)

    llm = OpenAILLM("http://stub.test/v1", "m", concurrency=1, transport=httpx.MockTransport(handler))
    llm.generate([chat("a"), chat("b")], SamplingParams(temperature=0.8, max_new_tokens=4), seeds=[11, 2**40 + 5])
    assert [b["seed"] for b in bodies] == [11, (2**40 + 5) % 2**31]
    llm.close()


def test_openai_rollout_on_a_real_server(llama_server):
    from swirl_lite.backends.openai import OpenAILLM
    from swirl_lite.rollout import rollout
    from swirl_lite.tasks import get_task
    from swirl_lite.tools import build_tools

    task = get_task("arithmetic")
    examples = task.load("train", 1)
    llm = OpenAILLM(llama_server, "smollm2", concurrency=4, timeout_s=60, max_retries=1)
    trajs = list(rollout(
        llm, task, build_tools([], None, task, examples), [(ex, s) for ex in examples for s in range(2)],
        max_steps=2, batch_size=4, params=SamplingParams(temperature=0.7, max_new_tokens=32), demonstrations=1,
    ))
    assert sorted(t.id for t in trajs) == sorted(f"{ex.id}#{s}" for ex in examples for s in range(2))
    for t in trajs:
        assert 1 <= len(t.steps) <= 2 and t.stop_reason in ("answer", "step_cap")
        assert t.completion_tokens == sum(s.completion_tokens for s in t.steps) > 0
        for step in t.steps:
            if step.action != "none":  # a parsed action ends at its (restored) closing tag
                assert step.text.endswith(f"</{step.action}>")
    llm.close()


def test_prefill_groups_run_a_joining_prompt_alone_and_split_a_spread_batch():
    from swirl_lite.backends.hf import prefill_groups

    # 13 rows continue (a ~20-token tool result each), 3 new trajectories join with whole prompts:
    # the 3 run first, longest together, so the call feeds ~20 positions a row instead of 450
    joined = prefill_groups([20] * 13 + [450, 430, 400], rows=16, overhead=256)
    assert joined == [[13, 14, 15]]
    # similar new parts: one pass does it all, nothing runs first
    assert prefill_groups([20, 22, 21, 19], rows=4, overhead=32) == []
    # a first call of fresh prompts spread from 284 to 502 tokens: runs of similar length, every
    # prompt once, longest first
    spread = [284 + 14 * i for i in range(16)]
    groups = prefill_groups(spread, rows=16, overhead=32)
    assert sorted(i for g in groups for i in g) == list(range(16)) and len(groups) > 1
    assert all(min(spread[i] for i in a) >= max(spread[i] for i in b) for a, b in zip(groups, groups[1:], strict=False))
    cost = sum(len(g) * max(spread[i] for i in g) + 32 for g in groups) + 16
    assert cost < 16 * max(spread)
    # a question's two samples share one prompt: prefilling it once serves both rows
    assert prefill_groups([300, 5], rows=3, overhead=32) == [[0]]
    assert prefill_groups([], rows=4, overhead=32) == []


def test_prefilled_rows_that_share_a_prefix_all_reach_the_call_cached(tiny_model_dir):
    """Two prompts share a long prefix beyond the instructions (as questions sharing a
    demonstration do) and are prefilled in different groups: the second group builds on the
    first's stored row without taking it away, so the call finds every row cached but its last
    token, and the turns are those of a call with nothing prefilled (float64)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_lite.backends import Turn
    from swirl_lite.backends.hf import HFLLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64).eval()
    system = {"role": "system", "content": "Solve the problem step by step with the calculator tool. " * 4}
    demo = "A farmer has 12 cows and buys 7 more, then sells 3 of them at the market. " * 3
    convs = [[system, {"role": "user", "content": demo + "How many cows now? " * k}] for k in (12, 1)]
    convs.append([system, {"role": "user", "content": "What is 3 + 4?"}])
    params = SamplingParams(temperature=0.0, max_new_tokens=6, stop=())
    texts = {}
    for cost in (0, 10**9):
        llm = HFLLM(model, tok)
        llm.FORWARD_COST_CPU = llm.FORWARD_COST = cost
        out = llm.advance([Turn(c, seed=i) for i, c in enumerate(convs)], params)
        texts[cost] = [o.text for o in out]
        lengths = [len(llm.prompt_ids(c)) for c in convs]
        if cost == 0:
            assert llm.last_cached == [n - 1 for n in lengths]  # every row cached but its last token
    assert texts[0] == texts[10**9]
