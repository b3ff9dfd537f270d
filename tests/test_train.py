"""Train stage: RL and SFT run on a tiny model, touch only the adapter, save, reload and resume."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from grpo_helpers import grpo_batch, lora_with_fused_head

from swirl_lite.config import build_recipe
from swirl_lite.runs import RunDir
from swirl_lite.schema import SubTrajectory, Verdict, write_jsonl

QUESTIONS = [("Ana has 3 bags of 4 apples. How many apples?", [12], "12"),
             ("Ben buys 2 pens at $5 and 1 book at $7. What does he pay?", [10, 17], "17"),
             ("A box holds 6 eggs. How many eggs are in 5 boxes and 2 loose eggs?", [30, 32], "32"),
             ("Maya reads 7 pages a day for 3 days, then 4 more. How many pages?", [21, 25], "25")]


def _states(n_padding: int = 0) -> list[dict]:
    rows = []
    for i, (question, steps, answer) in enumerate(QUESTIONS):
        head = "Use <math_exp>EXPR</math_exp> or <answer>N</answer>.\n" + "x " * (n_padding * i)
        prompt = [{"role": "user", "content": f"{head}\nQuestion: {question}"}]
        sub = SubTrajectory(
            id=f"q{i}#0/0", trajectory_id=f"q{i}#0", question_id=f"q{i}", step=0, kind="math_exp",
            prompt=prompt, completion=[{"role": "assistant", "content": f"<math_exp>{steps[0]}</math_exp>"}],
            task="arithmetic", outcome=True, gold=answer, meta={"steps": steps},
        )
        rows.append({**sub.__dict__, "verdict": {"label": "GOOD", "score": 1.0}})
    return rows


def make_run(tmp_path: Path, model_dir: str, **train) -> tuple:
    settings = dict(max_steps=2, per_device_batch_size=4, num_generations=2, max_completion_length=8,
                    learning_rate=1e-2, save_steps=50, logging_steps=1, warmup_ratio=0.0)
    settings.update(train)
    recipe = build_recipe({
        "model": {"name": model_dir, "lora": {"r": 4, "alpha": 8}},
        "judge": {"kind": "reference"},
        "train": settings,
        "output": {"dir": str(tmp_path), "name": "t"},
    })
    run = RunDir.for_recipe(recipe)
    write_jsonl(run / "filter" / "kept-00000.jsonl", _states())
    return recipe, run


class VaryingScorer:
    """A judge stand-in whose score varies with the text, so group advantages are not all zero."""

    identity = "varying"

    def __init__(self):
        self.calls = 0

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        self.calls += 1
        return [Verdict(s.id, self.identity, "GOOD", (sum(map(ord, s.completion[0]["content"])) % 7) / 6) for s in subs]


def _weights(path: str) -> dict:
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def _check_adapter(run: RunDir, base_dir: str) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = run / "train" / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    reloaded = PeftModel.from_pretrained(base, str(adapter))
    lora_b = [p for n, p in reloaded.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b), "adapter did not move from its zero init"
    for name, value in reloaded.get_base_model().state_dict().items():
        key = name.replace("base_layer.", "")
        if key in before:
            assert torch.equal(value, before[key]), f"base weight {key} changed"


def test_swirl_trains_only_the_adapter(tmp_path, tiny_model_dir, monkeypatch):
    from swirl_lite.stages.train import train
    from swirl_lite.training import shared_prompt

    shared_calls = []
    real = shared_prompt.logps_and_entropies
    monkeypatch.setattr(shared_prompt, "logps_and_entropies",
                        lambda *a, **k: shared_calls.append(1) or real(*a, **k))
    recipe, run = make_run(tmp_path, tiny_model_dir)
    base_before = _weights(tiny_model_dir)
    scorer = VaryingScorer()
    sampled, score = [], scorer.score  # each reward call's sampled actions, as the judge sees them
    scorer.score = lambda subs: sampled.append([s.completion[0]["content"] for s in subs]) or score(subs)
    summary = train(recipe, run, scorer=scorer)
    assert summary["steps"] == 2 and summary["method"] == "swirl" and scorer.calls >= 2
    assert shared_calls, "2 states x 2 actions per step: the loss should run each state once"
    assert summary["shared_states"] is True
    # valid_share: the share of the last step's sampled actions that parse as an action
    from swirl_lite.actions import parse_action

    last = sampled[-1]
    assert summary["valid_share"] == pytest.approx(sum(parse_action(t).kind != "none" for t in last) / len(last))
    assert summary["kl"] is not None
    info = json.loads((run / "train" / "train_info.json").read_text())
    assert info["method"] == "swirl" and info["states"] == len(QUESTIONS)
    # what the trainer logged at each step (train.logging_steps=1), kept for the report's plot
    logged = json.loads((run / "train" / "trainer_state.json").read_text())["log_history"]
    steps = [e for e in logged if "reward" in e]
    assert [e["step"] for e in steps] == [1, 2]
    assert steps[-1]["actions/valid"] == pytest.approx(summary["valid_share"])
    _check_adapter(run, tiny_model_dir)
    assert all((v == _weights(tiny_model_dir)[k]).all() for k, v in base_before.items())


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_state_gradient_off_trains_from_the_sampled_states(tmp_path, tiny_model_dir, monkeypatch, beta):
    """train.state_gradient false through the train stage: every state the loss needs comes from
    the step's sampling (none runs again), and the adapter learns; with a KL term the reference
    model's pass (adapter off: other weights) reads none; without share_prompt the recipe is
    refused in one line."""
    from swirl_lite.config import RecipeError
    from swirl_lite.stages.train import train
    from swirl_lite.training import shared_prompt

    lookups = []
    real = shared_prompt.SampledStates.get
    monkeypatch.setattr(shared_prompt.SampledStates, "get",
                        lambda self, prefix, step: lookups.append(real(self, prefix, step) is not None) or real(
                            self, prefix, step))
    recipe, run = make_run(tmp_path, tiny_model_dir, state_gradient=False, beta=beta)
    summary = train(recipe, run, scorer=VaryingScorer())
    assert summary["steps"] == 2 and summary["shared_states"] is True
    assert len(lookups) == 4 and all(lookups)  # 2 states a step, each read, never recomputed
    _check_adapter(run, tiny_model_dir)
    with pytest.raises(RecipeError, match="train.state_gradient"):
        build_recipe({"train": {"state_gradient": False, "share_prompt": False}})


def test_a_rerun_reproduces_and_another_seed_differs(tmp_path, tiny_model_dir):
    # Same seed, same machine and thread count: the same sampled actions and the same adapter, bit
    # for bit. Another train.seed samples other actions (and so trains another adapter).
    from safetensors.torch import load_file

    from swirl_lite.stages.train import train

    def once(name: str, seed: int):
        recipe, run = make_run(tmp_path / name, tiny_model_dir, seed=seed, max_steps=1)
        scorer, sampled = VaryingScorer(), []
        score = scorer.score
        scorer.score = lambda subs: sampled.append([s.completion[0]["content"] for s in subs]) or score(subs)
        summary = train(recipe, run, scorer=scorer)
        return sampled, load_file(str(run / "train" / "adapter" / "adapter_model.safetensors")), summary

    first, weights, summary = once("a", 0)
    again, weights_again, _ = once("b", 0)
    other, weights_other, _ = once("c", 1)
    assert summary["seed"] == 0 and summary["torch_threads"] >= 1
    assert first == again and weights.keys() == weights_again.keys()
    assert all(torch_equal(weights[k], weights_again[k]) for k in weights)
    assert other != first and not all(torch_equal(weights[k], weights_other[k]) for k in weights)


class PartlySettledScorer(VaryingScorer):
    """Every action at the states of q0 and q2 scores `tied` (a settled group: advantage 0); from the
    second step on, every action of every state does (a batch with nothing to learn). 0.2 (the format
    credit) is a tie whose float32 group mean is not exact (`shared_prompt.untie`)."""

    def __init__(self, tied: float = 1.0):
        super().__init__()
        self.tied = tied

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        varying = super().score(subs)
        return [Verdict(s.id, self.identity, "GOOD" if self.tied >= 0.5 else "BAD", self.tied)
                if s.question_id in ("q0", "q2") or self.calls > 1 else v
                for s, v in zip(subs, varying, strict=True)]


@pytest.mark.parametrize(("tied", "group", "expected"), [(1.0, 2, [2, 4, 4]), (0.2, 8, [8, 16, 16])])
def test_settled_states_skip_their_backward_with_the_same_update(tmp_path, tiny_model_dir, monkeypatch, tied,
                                                                 group, expected):
    """A state whose actions all scored the same runs its loss forward without autograd; the
    adapter after the step is the one the full backward pass gives (it adds exactly zero)."""
    from safetensors.torch import load_file

    from swirl_lite.stages.train import train
    from swirl_lite.training import rl, shared_prompt

    frozen_groups = []
    real = shared_prompt.logps_and_entropies

    def spy(*args, settled=None, **kwargs):
        if settled is not None:
            frozen_groups.append(int(settled.sum()))
        return real(*args, settled=settled, **kwargs)

    monkeypatch.setattr(shared_prompt, "logps_and_entropies", spy)

    def once(name: str, skip: bool):
        trainer_class = rl.shared_prompt_trainer()
        monkeypatch.setattr(trainer_class, "skip_settled", skip)
        monkeypatch.setattr(rl, "shared_prompt_trainer", lambda: trainer_class)
        frozen_groups.clear()
        recipe, run = make_run(tmp_path / name, tiny_model_dir, max_steps=3, beta=0.0,  # no KL term
                               num_generations=group, per_device_batch_size=2 * group)
        summary = train(recipe, run, scorer=PartlySettledScorer(tied))
        assert summary["shared_states"] is True
        return load_file(str(run / "train" / "adapter" / "adapter_model.safetensors")), list(frozen_groups)

    skipped, frozen = once("skip", True)
    full, frozen_off = once("full", False)
    # step 1: q0's or q2's actions (the other is in step 2); steps 2 and 3: every row settled.
    # Eight ties of 0.2 leave TRL a float32 mean off by ~1e-8: settled only after `untie`.
    assert frozen == expected and not frozen_off
    assert skipped.keys() == full.keys()
    for key in full:
        assert torch_equal(skipped[key], full[key]), key


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_the_live_train_line_shows_what_a_step_logged():
    from swirl_lite.training.progress import step_line

    logs = {"reward": 0.3125, "actions/valid": 0.625, "actions/answer": 0.25, "loss": 0.5, "kl": 0.1}
    assert step_line(logs, "swirl") == "reward 0.31 valid 62% answer 25%"
    assert step_line({"loss": "1.25", "grad_norm": 3}, "sft") == "loss 1.25"
    assert step_line({"train_runtime": 9.0}, "swirl") == ""  # the end-of-run summary: nothing to show


def test_sft_trains_only_the_adapter(tmp_path, tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM
    from trl.trainer import utils as trl_utils

    from swirl_lite.stages.train import train

    if hasattr(trl_utils, "_ChunkedLogProbFunction"):
        # TRL < 1.16 as a CPU without Triton imports it, whatever an earlier test installed:
        # SFT must put its own log-probability function in (it crashed in TRL's fused LM head).
        monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", None)
    recipe, run = make_run(tmp_path, tiny_model_dir, method="sft", per_device_batch_size=2, merge=True)
    summary = train(recipe, run)
    assert summary["steps"] == 2 and summary["loss"] is not None
    assert json.loads((run / "train" / "train_info.json").read_text())["method"] == "sft"
    _check_adapter(run, tiny_model_dir)
    merged = AutoModelForCausalLM.from_pretrained(run / "train" / "merged")
    assert not any("lora" in name for name in merged.state_dict())
    assert not [p for p in (run / "train").iterdir() if p.name.startswith(".")], "temporary folder left behind"


def test_resume_continues_the_step_count(tmp_path, tiny_model_dir):
    from swirl_lite.stages.train import train

    recipe, run = make_run(tmp_path, tiny_model_dir, save_steps=1)
    assert train(recipe, run, scorer=VaryingScorer())["resumed_from"] is None
    assert (run / "train" / "checkpoints" / "checkpoint-2").is_dir()
    longer = recipe.model_copy(update={"train": recipe.train.model_copy(update={"max_steps": 4})})
    summary = train(longer, run, scorer=VaryingScorer())
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["steps"] == 4
    state = json.loads((run / "train" / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and [e["step"] for e in state["log_history"]][:2] == [1, 2]


def test_policy_judge_shares_the_weights(tmp_path, tiny_model_dir, monkeypatch):
    """judge.model 'policy' (real LLM judge, logprob mode): one model in memory, adapter off to judge."""
    from transformers import PreTrainedModel

    import swirl_lite.judges as judges
    from swirl_lite.stages.train import train

    recipe, run = make_run(tmp_path, tiny_model_dir, max_steps=1)
    recipe = recipe.model_copy(update={"judge": recipe.judge.model_copy(update={"kind": "llm", "model": "policy"})})
    seen = {}
    real_build = judges.judge_for_run

    def spy(recipe, run_dir, *, policy, **kwargs):
        scorer = real_build(recipe, run_dir, policy=policy, **kwargs)
        inner = scorer.score

        def score(subs):
            gc.collect()
            models = [o for o in gc.get_objects() if isinstance(o, PreTrainedModel)]
            inner_ids = {id(m) for top in models for m in top.modules() if m is not top}
            seen["models"] = [m for m in models if id(m) not in inner_ids]  # LlamaModel sits inside
            seen["storages"] = {p.data_ptr() for m in models for p in m.parameters()}
            seen["policy"] = policy.model
            return inner(subs)

        scorer.score = score
        return scorer

    monkeypatch.setattr(judges, "judge_for_run", spy)
    summary = train(recipe, run)
    assert summary["steps"] == 1 and "policy=" in summary["judge"]
    assert len(seen["models"]) == 1, f"expected one model in memory, found {len(seen['models'])}"
    assert seen["models"][0] is seen["policy"].get_base_model()
    assert seen["storages"] == {p.data_ptr() for p in seen["policy"].parameters()}


def test_bad_records_are_counted(tmp_path, tiny_model_dir):
    from swirl_lite.models import load_tokenizer
    from swirl_lite.training.data import measure, read_states

    folder = tmp_path / "filter"
    rows = _states(n_padding=200)
    rows.append({"id": "broken", "prompt": "not a chat"})
    write_jsonl(folder / "a.jsonl", rows)
    data = measure(read_states(folder), load_tokenizer(tiny_model_dir), max_prompt_length=300)
    assert data.skipped == {"bad_record": 1, "state_too_long": 2}
    assert len(data.rows) == 2
    with pytest.raises(FileNotFoundError, match="run the filter stage"):
        read_states(tmp_path / "missing")


def test_longest_states_come_first():
    from swirl_lite.training.data import longest_first

    order = longest_first([5, 50, 7, 40, 1, 3], first_batch=2, seed=0, total=14)
    assert order[:2] == [1, 3] and sorted(order[:6]) == list(range(6)) and len(order) == 14
    assert order == longest_first([5, 50, 7, 40, 1, 3], first_batch=2, seed=0, total=14)


def test_stop_strings_cut_sampled_actions(tiny_model_dir):
    """TRL calls generate(input_ids, attention_mask, generation_config) with no tokenizer."""
    from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

    from swirl_lite.models import ModelConfig, load_model
    from swirl_lite.training.rl import bind_stop_strings

    loaded = load_model(ModelConfig(name=tiny_model_dir))
    tok = loaded.tokenizer
    enc = tok(["Question: 1+1?", "Question: 2+2 or more?"], return_tensors="pt", padding=True)
    tag = tok("x </answer>", add_special_tokens=False)["input_ids"]

    class Force(LogitsProcessor):  # make the random tiny model write "x </answer>" then babble
        def __call__(self, input_ids, scores):
            step = input_ids.shape[1] - enc["input_ids"].shape[1]
            scores[:] = -1e9
            scores[:, tag[step] if step < len(tag) else tag[0]] = 0
            return scores

    config = GenerationConfig(max_new_tokens=12, do_sample=False, stop_strings=["</answer>"],
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    kwargs = dict(**enc, generation_config=config, logits_processor=LogitsProcessorList([Force()]))
    with pytest.raises(ValueError, match="tokenizer"):
        loaded.model.generate(**kwargs)
    bind_stop_strings(loaded.model, tok)
    out = loaded.model.generate(**kwargs)
    assert out.shape[1] - enc["input_ids"].shape[1] == len(tag)
    assert tok.decode(out[0, enc["input_ids"].shape[1]:]).endswith("</answer>")


@pytest.mark.slow
def test_two_process_cpu_launch(tmp_path, tiny_model_dir):
    recipe, run = make_run(tmp_path, tiny_model_dir, max_steps=2)
    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text((run / "recipe.yaml").read_text())
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "SWIRL_LITE_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        # `--cpu` would pick accelerate's single-process launcher; the multi-process launcher on a
        # machine without CUDA gives a gloo group (TrainingArguments.use_cpu is set for it).
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "swirl_lite.cli", "train", str(recipe_file)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    info = json.loads((run / "train" / "train_info.json").read_text())
    assert info["steps"] == 2 and info["processes"] == 2
    assert info["shared_states"] is False  # DDP: TRL's per-row path
    assert (run / "train" / "adapter" / "adapter_model.safetensors").is_file()


def test_recipe_maps_onto_grpo_config(tmp_path):
    from swirl_lite.training.rl import grpo_config

    recipe = build_recipe({"train": {
        "learning_rate": 3e-4, "lr_scheduler": "linear", "warmup_ratio": 0.1, "max_steps": 7,
        "per_device_batch_size": 6, "gradient_accumulation_steps": 2, "num_generations": 3, "beta": 0.1,
        "temperature": 0.7, "max_completion_length": 64, "gradient_checkpointing": False, "save_steps": 3,
        "logging_steps": 2, "report_to": "tensorboard", "seed": 5,
    }})
    args = grpo_config(recipe, tmp_path)
    assert (args.learning_rate, args.lr_scheduler_type, args.warmup_steps, args.max_steps) == (3e-4, "linear", 0.1, 7)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps, args.num_generations) == (6, 2, 3)
    assert (args.beta, args.temperature, args.max_completion_length, args.save_steps, args.logging_steps) == (
        0.1, 0.7, 64, 3, 2)
    assert args.report_to == ["tensorboard"] and args.seed == 5 and not args.gradient_checkpointing
    assert args.shuffle_dataset is False and args.generation_kwargs["stop_strings"] == ["</search_query>", "</math_exp>", "</answer>"]
    bad = build_recipe({"train": {"per_device_batch_size": 4, "num_generations": 3}})
    with pytest.raises(ValueError, match="num_generations=3 must divide"):
        grpo_config(bad, tmp_path)


def test_judge_reward_scores_sampled_actions_and_logs_shares():
    from swirl_lite.training.reward import FormatReward, JudgeReward

    rows = _states()
    record = json.dumps({k: v for k, v in rows[0].items() if k != "verdict"})
    texts = ["think <math_exp>3*4</math_exp>", "<answer>12</answer>", "no tag here", "<math_exp> </math_exp>"]
    logged: dict[str, float] = {}
    reward = JudgeReward(FormatReward())
    scores = reward(prompts=[rows[0]["prompt"]] * 4, completions=[[{"role": "assistant", "content": t}] for t in texts],
                    sub=[record] * 4, log_metric=logged.__setitem__, trainer_state=None)
    assert scores == [1.0, 1.0, 0.0, 0.0]
    assert logged == {"actions/valid": 0.5, "actions/tool_call": 0.25, "actions/answer": 0.25}


@pytest.mark.parametrize("pass_cost", [None, 0])
def test_shared_prompt_loss_equals_trls_per_row_path(tiny_model_dir, monkeypatch, pass_cost):
    """One forward per state, repeated for its actions, gives TRL's log-probs, entropies and grads.
    `pass_cost` 0: a pass costs nothing, so each group's actions run in one batch per distinct
    length (`padded_runs`); the values are the same."""
    import torch

    from swirl_lite.backends.hf import HFLLM
    from swirl_lite.models import load_tokenizer
    from swirl_lite.training import shared_prompt

    tok = load_tokenizer(tiny_model_dir)  # sets a pad token where the saved one has none (transformers 5.17)
    model = lora_with_fused_head(tiny_model_dir, temperature=0.7)
    ids, mask, C, cmask = grpo_batch(tok)
    assert shared_prompt.prompt_groups(ids[:, :-C], mask[:, :-C]) == [[0, 1, 4], [2, 3, 5]]

    def grads(logps):
        model.zero_grad()
        (logps * cmask).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    labels = ids.masked_fill(mask == 0, -100)  # TRL's own path (GRPOTrainer, one row at a time)
    labels[:, :-C] = -100
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    ref_logps, ref_entropy = out.log_probs[:, -C:], out.entropy[:, -C:]
    ref_grads = grads(ref_logps)

    if pass_cost is not None:
        monkeypatch.setattr(HFLLM, "FORWARD_COST_CPU", pass_cost)
    passes = []
    first = model.get_base_model().model.layers[0].register_forward_hook(lambda *a: passes.append(1))
    logps, entropy = shared_prompt.logps_and_entropies(model, ids, mask, C, compute_entropy=True)
    first.remove()
    lengths = cmask.sum(1).tolist()
    group_runs = [len({lengths[r] for r in rows}) if pass_cost == 0 else 1 for rows in ([0, 1, 4], [2, 3, 5])]
    runs = sum(group_runs)
    assert len(set(lengths)) > 2 and len(passes) == 2 + runs  # two states, then the actions' runs
    assert logps.shape == ref_logps.shape == (6, C)
    assert (logps * cmask).abs().sum() > 1  # real log-probs, not a masked-out zero tensor
    torch.testing.assert_close(logps * cmask, ref_logps * cmask, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(entropy * cmask, ref_entropy * cmask, rtol=1e-9, atol=1e-9)
    new_grads = grads(logps)
    assert any(g.abs().sum() > 0 for g in ref_grads.values())
    # TRL's head computes in float32 inside, tiled by the batch's shape (and the threads' sums):
    # measured up to 1.4e-6 of a tensor's largest element at 2 threads
    for name, g in ref_grads.items():
        torch.testing.assert_close(new_grads[name], g, rtol=1e-5, atol=1e-5 * max(1.0, float(g.abs().max())),
                                   msg=name)
    # train.gradient_checkpointing: the states' and the actions' forward recomputed in backward,
    # one layer at a time (the last layer first, just before its own backward), same numbers
    layers = model.get_base_model().model.layers
    ran = []
    handles = [layer.self_attn.register_forward_hook(lambda m, *a: ran.append(m.layer_idx)) for layer in layers]
    logps_ckpt, _ = shared_prompt.logps_and_entropies(model, ids, mask, C, compute_entropy=False, checkpointed=True)
    torch.testing.assert_close(logps_ckpt * cmask, logps * cmask, rtol=1e-12, atol=1e-12)
    forwards = len(ran)
    ckpt_grads = grads(logps_ckpt)
    for handle in handles:
        handle.remove()
    replayed = ran[forwards:]
    # every layer of both states and of each batch of actions
    assert len(layers) > 1 and sorted(replayed) == sorted(list(range(len(layers))) * (2 + runs))
    assert replayed[0] == len(layers) - 1  # not the whole state's forward replayed from layer 0
    for name, g in new_grads.items():
        torch.testing.assert_close(ckpt_grads[name], g, rtol=1e-12, atol=1e-12, msg=name)
    # a settled state (every action's advantage 0): the same values, computed without autograd,
    # and the same gradient for a loss that weighs its rows by 0
    advantage = torch.tensor([0.0, 0.0, 1.0, -1.0, 0.0, 0.5])[:, None]
    settled = shared_prompt.settled_rows(advantage[:, 0], beta=0.0)
    assert settled.tolist() == [True, True, False, False, True, False]
    assert shared_prompt.settled_rows(advantage[:, 0], beta=0.04) is None  # the KL term has a gradient
    grad_on = []
    hook = layers[0].self_attn.register_forward_hook(lambda *a: grad_on.append(torch.is_grad_enabled()))
    logps_settled, entropy_settled = shared_prompt.logps_and_entropies(
        model, ids, mask, C, compute_entropy=True, settled=settled)
    hook.remove()
    # state [0, 1, 4] and its actions, then [2, 3, 5]'s
    assert grad_on == [False] * (1 + group_runs[0]) + [True] * (1 + group_runs[1])
    assert torch.equal(logps_settled, logps.detach()) and torch.equal(entropy_settled, entropy.detach())
    fresh, _ = shared_prompt.logps_and_entropies(model, ids, mask, C, compute_entropy=False)
    settled_grads, weighted_grads = grads(logps_settled * advantage), grads(fresh * advantage)
    assert any(g.abs().sum() > 0 for g in weighted_grads.values())
    for name, g in weighted_grads.items():
        assert torch.equal(settled_grads[name], g), name
    every = shared_prompt.logps_and_entropies(model, ids, mask, C, False, settled=torch.ones(6, dtype=torch.bool))[0]
    assert torch.equal(every, fresh.detach())
    zero = grads(every * advantage)  # every trainable weight gets its gradient, a zero one
    assert zero.keys() == weighted_grads.keys() and all(not g.any() for g in zero.values())


def test_state_gradient_off_differentiates_the_actions_only(tiny_model_dir):
    """train.state_gradient false: the same log-probs; the gradient of each row computed with its
    state's keys and values detached (row by row here, no sharing); not the exact gradient; and under
    checkpointing only the actions' layers are replayed (the state has no backward pass)."""
    import torch

    from swirl_lite.backends.hf import plain_cache
    from swirl_lite.compat import with_cache
    from swirl_lite.models import load_tokenizer
    from swirl_lite.training import shared_prompt

    tok = load_tokenizer(tiny_model_dir)
    model = lora_with_fused_head(tiny_model_dir, temperature=0.7)
    ids, mask, C, cmask = grpo_batch(tok)

    def grads(logps):
        model.zero_grad()
        (logps * cmask).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    rows = []
    for i in range(ids.size(0)):
        prompt = ids[i, :-C][mask[i, :-C].bool()]
        cache = plain_cache(model.config)
        with torch.no_grad():
            model(input_ids=prompt[None, :-1], use_cache=True, logits_to_keep=1, **with_cache(model, cache))
        seq = torch.cat([prompt[-1:], ids[i, -C:]])[None]
        labels = seq.clone()
        labels[0, 0] = -100
        labels[0, 1:][mask[i, -C:] == 0] = -100
        seq_mask = torch.cat([mask.new_ones(prompt.numel()), mask[i, -C:]])[None]
        out = model(input_ids=seq, attention_mask=seq_mask, labels=labels, fused_lm_head=True,
                    **with_cache(model, cache))
        rows.append(out.log_probs[0, -C:])
    ref_grads = grads(torch.stack(rows))
    exact_grads = grads(shared_prompt.logps_and_entropies(model, ids, mask, C, False)[0])
    exact = shared_prompt.logps_and_entropies(model, ids, mask, C, False)[0].detach()
    layers = model.get_base_model().model.layers
    ran = []
    for checkpointed in (False, True):
        ran.clear()
        handles = [layer.self_attn.register_forward_hook(lambda m, *a: ran.append(m.layer_idx)) for layer in layers]
        cut, _ = shared_prompt.logps_and_entropies(model, ids, mask, C, False, checkpointed=checkpointed,
                                                   state_gradient=False)
        torch.testing.assert_close(cut * cmask, exact * cmask, rtol=1e-12, atol=1e-12)
        forwards = len(ran)
        cut_grads = grads(cut)
        for handle in handles:
            handle.remove()
        assert forwards == 4 * len(layers)  # two states and two groups of actions, once each
        # checkpointed: the two groups of actions replayed, not the states
        assert sorted(ran[forwards:]) == (sorted(list(range(len(layers))) * 2) if checkpointed else [])
        assert any(g.abs().sum() > 0 for g in cut_grads.values())
        for name, g in ref_grads.items():  # float32 inside TRL's head, other batch shapes: rounding
            torch.testing.assert_close(cut_grads[name], g, rtol=1e-5, atol=1e-5 * max(1.0, float(g.abs().max())),
                                       msg=name)
        # an approximation: the layers' weights also shape the state's keys and values
        assert any(not torch.allclose(cut_grads[n], exact_grads[n]) for n in cut_grads)


def test_shared_prompt_generate_matches_plain_generate(tiny_model_dir):
    import torch
    from transformers import GenerationConfig

    from swirl_lite.models import load_tokenizer
    from swirl_lite.training.rl import bind_stop_strings

    tok = load_tokenizer(tiny_model_dir)  # sets a pad token where the saved one has none (transformers 5.17)
    model = lora_with_fused_head(tiny_model_dir, temperature=1.0)
    ids, mask, C, _ = grpo_batch(tok)
    ids, mask = ids[:, :-C], mask[:, :-C]
    config = GenerationConfig(max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id,
                              eos_token_id=tok.eos_token_id)
    with torch.no_grad():
        plain = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        calls = []
        original = model.generate

        def counting(*args, **kwargs):
            calls.append(kwargs["input_ids"].shape)
            return original(*args, **kwargs)

        model.generate = counting
        bind_stop_strings(model, tok, share_prompt=True)
        shared = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    # one call for both states (rows in mixed order, of two lengths), left-padded to the longer
    assert [tuple(c) for c in calls] == [(6, int(mask.sum(1).max()))]
    assert torch.equal(shared, plain)


def test_shared_prompt_sampling_draws_what_plain_generate_draws(tiny_model_dir):
    """Seeded sampling: one call for every state consumes the random stream as TRL's plain call
    does, so the sampled actions are the same (one call per state drew others)."""
    import torch
    from transformers import GenerationConfig

    from swirl_lite.models import load_tokenizer
    from swirl_lite.training.rl import bind_stop_strings

    tok = load_tokenizer(tiny_model_dir)
    model = lora_with_fused_head(tiny_model_dir, temperature=1.0)
    ids, mask, C, _ = grpo_batch(tok)
    ids, mask = ids[:, :-C], mask[:, :-C]
    config = GenerationConfig(max_new_tokens=8, do_sample=True, temperature=1.0, top_k=0,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    with torch.no_grad():
        torch.manual_seed(3)
        plain = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        bind_stop_strings(model, tok, share_prompt=True)
        torch.manual_seed(3)
        shared = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    assert torch.equal(shared, plain)
    assert len({tuple(r) for r in plain[:, ids.size(1):].tolist()}) > 2  # really sampled


def test_loss_reads_the_states_sampling_ran(tiny_model_dir):
    """SampledStates: sampling keeps each state's keys and values; the loss of the same optimizer
    step reads them for a state without autograd (train.state_gradient false, or a settled group)
    instead of running it, with the same log-probs and gradients bit for bit; at another step, or
    for a state it did not sample, the state runs again."""
    import torch
    from transformers import GenerationConfig

    from swirl_lite.models import load_tokenizer
    from swirl_lite.training import shared_prompt
    from swirl_lite.training.rl import bind_stop_strings

    tok = load_tokenizer(tiny_model_dir)
    model = lora_with_fused_head(tiny_model_dir, temperature=1.0)
    ids, mask, C, cmask = grpo_batch(tok)
    bind_stop_strings(model, tok, share_prompt=True)
    states = model.generate.sampled_states
    states.start(step=3)
    config = GenerationConfig(max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id,
                              eos_token_id=tok.eos_token_id)
    with torch.no_grad():
        model.generate(input_ids=ids[:, :-C], attention_mask=mask[:, :-C], generation_config=config)
    assert len(states.entries) == 2  # the two states, each but its last token
    layers = model.get_base_model().model.layers
    ran = []
    hooks = [layer.self_attn.register_forward_hook(lambda m, *a: ran.append(m.layer_idx)) for layer in layers]

    def loss(step, settled=None, state_gradient=False):
        ran.clear()
        logps, _ = shared_prompt.logps_and_entropies(
            model, ids, mask, C, False, checkpointed=True, settled=settled, state_gradient=state_gradient,
            sampled=lambda prefix: states.get(prefix, step))
        forwards = len(ran)
        model.zero_grad()
        if logps.requires_grad:
            (logps * cmask).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return logps.detach(), grads, forwards

    fresh, fresh_grads, fresh_forwards = loss(step=4)  # a later step: weights may have changed
    reused, reused_grads, reused_forwards = loss(step=3)
    assert fresh_forwards == 4 * len(layers) and reused_forwards == 2 * len(layers)  # the actions only
    assert torch.equal(reused, fresh) and fresh_grads.keys() == reused_grads.keys() and fresh_grads
    for name, g in fresh_grads.items():
        assert torch.equal(reused_grads[name], g), name
    # the exact gradient (state_gradient on) runs a live group's state; a settled group's is read
    settled = torch.tensor([True, True, False, False, True, False])
    exact, _, exact_forwards = loss(step=3, settled=settled, state_gradient=True)
    assert exact_forwards == 3 * len(layers) and torch.equal(exact, fresh)
    states.start(step=5)  # a new generation batch forgets the last one's states
    assert loss(step=5)[2] == 4 * len(layers)
    for hook in hooks:
        hook.remove()


def test_sampling_writes_each_token_into_a_preallocated_cache(tiny_model_dir):
    """The states' caches for sampling hold room for the actions, so no step re-copies the cache."""
    import torch

    from swirl_lite.training.shared_prompt import _decode_cache

    model = lora_with_fused_head(tiny_model_dir, temperature=1.0)
    prefix = torch.arange(5, 25)
    with torch.no_grad():
        cache = _decode_cache(model, [prefix], [0, 0, 0], room=7)
        layer = cache.layers[0]
        keys, _ = layer.buffers
        assert tuple(layer.keys.shape[::2]) == (3, 20) and keys.shape[2] == 27
        before = layer.keys.clone()
        layer.update(torch.ones_like(layer.keys[:, :, :1]), torch.ones_like(layer.values[:, :, :1]))
    assert layer.keys.data_ptr() == keys.data_ptr()  # written in place, not concatenated
    assert torch.equal(layer.keys[:, :, :20], before) and torch.equal(layer.keys[:, :, 20], torch.ones_like(before[:, :, 0]))


def test_untie_zeroes_only_groups_whose_actions_all_scored_the_same():
    """TRL's advantages for one tied group of 0.2s and one live group, computed its way (float32
    group mean and std, / (std + 1e-4)): the tied group becomes exactly 0, the live one is untouched."""
    import torch
    from trl.trainer.utils import nanstd

    from swirl_lite.training.shared_prompt import untie

    rewards = torch.tensor([0.2] * 8 + [0.0, 1.0, 0.2, 1.0, 0.0, 0.0, 1.0, 0.2, 1.0] + [1.0] * 7)
    groups = rewards.view(-1, 8)
    mean = torch.nanmean(groups, dim=1, keepdim=True)
    advantages = ((groups - mean) / (nanstd(groups, dim=1).unsqueeze(1) + 1e-4)).view(-1)
    assert bool((advantages[:8] != 0).all())  # the tie TRL leaves: about -1.5e-4 a row
    out = untie(advantages, 8)
    assert torch.equal(out[:8], torch.zeros(8)) and torch.equal(out[16:], torch.zeros(8))
    assert torch.equal(out[8:16], advantages[8:16]) and bool((out[8:16] != 0).all())


def test_no_sampled_states_are_kept_with_dropout(tiny_model_dir):
    """With dropout (lora.dropout, or the model config's) every training-mode pass draws its own
    masks, so the state sampling ran is not the one the loss would run: none is kept, and the loss
    runs each state itself, as TRL's does."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from swirl_lite.models import load_tokenizer
    from swirl_lite.training import shared_prompt
    from swirl_lite.training.rl import bind_stop_strings

    tok = load_tokenizer(tiny_model_dir)

    def kept(lora_dropout: float, attention_dropout: float = 0.0):
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        base.config.attention_dropout = attention_dropout
        model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=lora_dropout,
                                                target_modules=["q_proj"]))
        bind_stop_strings(model, tok, share_prompt=True)
        return model.generate.sampled_states

    assert isinstance(kept(0.0), shared_prompt.SampledStates)
    assert kept(0.1) is None and kept(0.0, attention_dropout=0.1) is None
