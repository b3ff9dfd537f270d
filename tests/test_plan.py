"""`swirl-lite plan`: the CPU card within 30% of the measured runs it cites, figures that move with
the recipe the way the work does, the T4 without bf16, the GPU recipes inside one Colab session,
`--json` keys, the same memory figure as `doctor`, tables within 80 columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from swirl_lite.cli import main
from swirl_lite.config import load_recipe
from swirl_lite.doctor import estimate_memory
from swirl_lite.errors import UsageError
from swirl_lite.plan import CALIBRATION, CALIBRATION_SETTINGS, CARDS, card_for, predict

ROOT = Path(__file__).resolve().parents[1]
GPU_RECIPES = ("gsm8k", "hotpotqa", "musique")


def _plan(name: str, card: str = "t4", *overrides: str):
    return predict(load_recipe(ROOT / "recipes" / f"{name}.yaml", list(overrides)), card, name)


def _seconds(plan) -> dict[str, float]:
    return {**{s.stage: s.seconds for s in plan.stages}, "total": plan.total_seconds}


@pytest.mark.parametrize("recipe", sorted(CALIBRATION))
def test_cpu_plan_is_within_30_percent_of_the_measured_runs(recipe):
    predicted = _seconds(_plan(recipe, "cpu", *CALIBRATION_SETTINGS.get(recipe, ())))
    for stage, measured in CALIBRATION[recipe].items():
        assert abs(predicted[stage] / measured - 1) <= 0.30, f"{recipe} {stage}: {predicted[stage]:.0f} s vs {measured}"


@pytest.mark.parametrize("recipe", GPU_RECIPES)
def test_gpu_recipes_fit_one_colab_t4_session(recipe, tmp_path):
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(main, ["plan", f"recipes/{recipe}.yaml", "--gpu", "t4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["total_hours"] <= 3.0 and data["peak_vram_gb"] <= 14.0 and data["fits"]
    assert set(data["stages"]) == {"generate", "filter", "train", "evaluate"}
    for stage in data["stages"].values():
        assert {"tokens", "decoded_tokens", "hours", "seconds", "peak_vram_gb", "expected_vram_gb"} <= set(stage)
    assert abs(sum(s["hours"] for s in data["stages"].values()) - data["total_hours"]) < 0.01
    assert data["dtype"] == "float16" and data["worst_case_hours"] >= data["total_hours"]


def test_full_recipes_do_not_fit_a_t4_and_the_plan_says_so():
    plan = _plan("gsm8k-full")
    assert plan.dtype == "float32" and not plan.fits and plan.total_seconds > 3 * 3600  # Gemma 3 on a T4
    result = CliRunner().invoke(main, ["plan", "recipes/gsm8k-full.yaml", "--gpu", "t4"])
    assert "does NOT fit" in result.output


@pytest.mark.parametrize("recipe", ["gsm8k", "gsm8k-full", "hotpotqa", "quickstart"])
def test_plan_memory_is_the_doctor_estimate(recipe):
    """The plan's peak is `memory_estimate` at the recipe's limits, the figure `doctor` prints."""
    resolved = load_recipe(ROOT / "recipes" / f"{recipe}.yaml")
    doctor = max(s.total for s in estimate_memory(resolved, (7, 5)))
    assert abs(predict(resolved, "t4").peak_gb - doctor) < 1e-9
    assert all(s.expected_gb <= s.peak_gb + 1e-9 for s in predict(resolved, "t4").stages)


def test_t4_refuses_bf16_and_a100_takes_it():
    recipe = load_recipe(ROOT / "recipes" / "gsm8k.yaml", ["model.dtype=bfloat16"])
    with pytest.raises(UsageError, match="model.dtype: a T4 has no native bfloat16"):
        predict(recipe, "t4")
    assert predict(recipe, "a100").dtype == "bfloat16"
    result = CliRunner().invoke(main, ["plan", "recipes/gsm8k.yaml", "--gpu", "t4", "--set", "model.dtype=bfloat16"])
    errors = [line for line in result.output.splitlines() if line.startswith("error")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output


def test_more_questions_cost_more_generation_and_nothing_else():
    small, big = _plan("gsm8k", "t4", "data.limit=400"), _plan("gsm8k", "t4", "data.limit=800")
    a, b = _seconds(small), _seconds(big)
    assert 1.7 < b["generate"] / a["generate"] < 2.1
    assert b["train"] == a["train"] and b["evaluate"] == a["evaluate"]
    assert big.stages[0].decoded == 2 * small.stages[0].decoded


def test_train_time_is_linear_in_steps_and_eval_in_questions():
    a, b = _seconds(_plan("hotpotqa")), _seconds(_plan("hotpotqa", "t4", "train.max_steps=400"))
    load = CARDS["t4"].load_s
    assert abs((b["train"] - load) / (a["train"] - load) - 2) < 1e-6
    c = _seconds(_plan("hotpotqa", "t4", "eval.n_questions=600"))
    assert 1.6 < c["evaluate"] / a["evaluate"] < 2.1 and c["generate"] == a["generate"]


def test_an_llm_judge_costs_a_filter_pass_the_reference_judge_does_not():
    ref = _seconds(_plan("gsm8k"))
    llm = _seconds(_plan("gsm8k", "t4", "judge.kind=llm"))
    assert ref["filter"] < 10 and llm["filter"] > 600 and llm["train"] > ref["train"]  # the reward too


def test_a_card_with_more_bandwidth_and_compute_is_faster():
    t4, a100 = _seconds(_plan("gsm8k", "t4")), _seconds(_plan("gsm8k", "a100"))
    assert all(a100[s] < t4[s] for s in ("generate", "train", "evaluate"))


def test_lockstep_pays_max_new_tokens_per_round_and_rounds_pay_the_actions():
    lockstep = _plan("gsm8k")
    longer = _plan("gsm8k", "t4", "generate.max_new_tokens=384")
    rounds = _plan("gsm8k", "t4", "generate.chunk_tokens=16")
    assert _seconds(longer)["generate"] > 1.5 * _seconds(lockstep)["generate"]
    assert _seconds(rounds)["generate"] < _seconds(lockstep)["generate"]
    assert longer.stages[0].decoded == lockstep.stages[0].decoded  # the same real tokens either way


def test_worst_case_is_at_least_the_expected_plan():
    plan = _plan("learn-cpu", "cpu")
    assert plan.worst_seconds > plan.total_seconds


def test_plan_tables_fit_80_columns_and_print_the_assumptions():
    result = CliRunner().invoke(main, ["plan", "recipes/gsm8k.yaml", "--gpu", "t4"])
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    for word in ("assumptions", "320 GB/s", "65 TFLOPS", "no bf16", "lockstep", "worst case", "(assumed)"):
        assert word in result.output, word
    cpu = CliRunner().invoke(main, ["plan", "recipes/quickstart.yaml", "--gpu", "cpu"]).output
    assert "fitted to measured CPU runs" in cpu


def test_unknown_model_is_one_line():
    result = CliRunner().invoke(main, ["plan", "recipes/gsm8k.yaml", "--set", "model.name=someone/mystery"])
    errors = [line for line in result.output.splitlines() if line.startswith("error")]
    assert result.exit_code == 2 and len(errors) == 1 and "model.name" in errors[0]


def test_doctor_shows_the_plans_fit():
    result = CliRunner().invoke(main, ["doctor", "recipes/gsm8k.yaml", "--offline", "--capability", "7.5"])
    assert result.exit_code == 0, result.output
    assert "plan (t4)" in result.output and "fits a T4's 15 GiB" in result.output
    full = CliRunner().invoke(main, ["doctor", "recipes/gsm8k-full.yaml", "--offline", "--capability", "7.5"])
    assert "over a T4's 15 GiB" in full.output


def test_card_for_a_device():
    assert card_for(None) == "cpu" and card_for((7, 5)) == "t4" and card_for((8, 0)) == "a100"
    assert card_for((8, 9), "NVIDIA GeForce RTX 4090") == "4090" and card_for((8, 9), "NVIDIA L4") == "l4"


def test_cli_offers_every_card():
    command = main.get_command(None, "plan")
    option = next(p for p in command.params if p.name == "card")
    assert tuple(option.type.choices) == tuple(CARDS)


def test_embedded_gemma_is_planned_as_gemma_3_270m_not_the_135m_model():
    """'embedded-gemma' contains 'embedded': the size table must not take it for SmolLM2-135M."""
    from swirl_lite.memory_estimate import model_shape

    gemma, smol = model_shape("embedded-gemma"), model_shape("embedded")
    assert (gemma.vocab, gemma.layers, gemma.window) == (262144, 18, 512) and smol.vocab == 49152
    a = _plan("quickstart", "cpu", "model.name=embedded-gemma").stages[0]
    b = _plan("quickstart", "cpu").stages[0]
    assert a.seconds > b.seconds and a.peak_gb != b.peak_gb


@pytest.mark.parametrize("recipe", GPU_RECIPES)
def test_recipe_header_states_the_plans_prediction(recipe):
    """The header's `# the prediction: ~X h, Y GiB` is what `plan` says today, to its rounding."""
    import re

    header = (ROOT / "recipes" / f"{recipe}.yaml").read_text().splitlines()[:4]
    said = next(re.search(r"the prediction: ~([\d.]+) h, ([\d.]+) GiB", line) for line in header if "prediction" in line)
    plan = _plan(recipe)
    assert abs(plan.total_seconds / 3600 - float(said[1])) <= 0.05 and abs(plan.peak_gb - float(said[2])) <= 0.05


def test_shared_states_hold_each_state_once_without_checkpointing():
    """train.share_prompt: a group's state is in the batch once beside its G actions. Without
    checkpointing, the activations are the state's once plus the actions', at full depth; with it,
    each state keeps only its keys, values and layer inputs and the actions their layer inputs, plus
    one layer's full set during its recompute. TRL's per-row path checkpoints G copies of the state."""
    from swirl_lite.memory_estimate import stage_memory

    recipe = load_recipe(ROOT / "recipes" / "learn-cpu.yaml")  # 16 actions = 2 states x 8
    assert recipe.train.gradient_checkpointing
    kept = stage_memory(recipe, 4)[2].activations
    shared = stage_memory(load_recipe(ROOT / "recipes" / "learn-cpu.yaml", ["train.gradient_checkpointing=false"]), 4)[2]
    per_row = stage_memory(load_recipe(ROOT / "recipes" / "learn-cpu.yaml", ["train.share_prompt=false"]), 4)[2]
    layer = (18 * 576 + 8 * 1536) * 4 / 2
    kv = 2 * 30 * 3 * 64 * 4  # SmolLM2-135M: 30 layers, 3 KV heads of 64, fp32
    assert abs(shared.activations - (2 * 1024 + 16 * 48) * 30 * layer / 1024**3) < 1e-9
    inputs = 30 * 576 * 4  # each layer's input, fp32
    assert abs(kept - (2 * 1024 * (kv + inputs) + 16 * 48 * inputs + 1024 * layer) / 1024**3) < 1e-9
    assert kept < 0.15 * shared.activations
    assert abs(per_row.activations - 16 * (1024 + 48) * (30 * 576 * 4 + layer) / 1024**3) < 1e-9
    # train.state_gradient false: a state keeps its keys and values only, no layer inputs, no replay
    cut = stage_memory(load_recipe(ROOT / "recipes" / "learn-cpu.yaml", ["train.state_gradient=false"]), 4)[2]
    assert abs(cut.activations - (2 * 1024 * kv + 16 * 48 * (inputs + layer)) / 1024**3) < 1e-9
    assert cut.activations < 0.6 * kept


def test_no_state_gradient_plans_a_loss_over_the_actions_only():
    exact = _seconds(_plan("learn-cpu", "cpu"))
    cut = _seconds(_plan("learn-cpu", "cpu", "train.state_gradient=false"))
    assert cut["train"] < 0.8 * exact["train"] and cut["generate"] == exact["generate"]


def test_gpu_plans_show_the_time_at_the_measured_layer_cost_and_cpu_plans_do_not(tmp_path):
    gpu = _plan("gsm8k", "t4")
    assert gpu.measured_seconds > gpu.total_seconds  # 5.5 ms a layer a pass costs more than 0.3
    cpu = _plan("quickstart", "cpu")
    assert cpu.measured_seconds is None
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(main, ["plan", str(ROOT / "recipes" / "gsm8k.yaml"), "--gpu", "t4", "--json", str(out)])
    assert result.exit_code == 0 and "measured cost" in result.output
    said = json.loads(out.read_text())
    assert said["at_measured_layer_cost_hours"] == round(gpu.measured_seconds / 3600, 3)
