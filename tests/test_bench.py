"""The bench group: every benchmark under `swirl-lite bench`; rollout honours --set without --recipe."""

from __future__ import annotations

import json

from click.testing import CliRunner

from swirl_lite.cli import main


def test_bench_group_lists_every_benchmark():
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == {"tools", "rollout", "judge", "train", "gpu", "linear"}


def test_bench_rollout_applies_set_to_the_default_recipe(tmp_path, tiny_model_dir):
    out = tmp_path / "rollout.json"
    result = CliRunner().invoke(main, [
        "bench", "rollout", "--set", f"model.name={tiny_model_dir}", "--set", "generate.temperature=0.25",
        "--set", "generate.demonstrations=0", "--questions", "2", "--batch", "2", "--max-steps", "1",
        "--max-new-tokens", "4", "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    numbers = json.loads(out.read_text())
    assert numbers["model"] == tiny_model_dir and numbers["task"] == "arithmetic"  # the default's task
    assert numbers["questions"] == 2 and numbers["batch_1"]["trajectories"] == 2
    text = " ".join(result.output.split())
    assert "temperature 0.25, 0 demonstrations" in text


def test_bench_rollout_rejects_a_bad_set_in_one_line():
    result = CliRunner().invoke(main, ["bench", "rollout", "--set", "generate.temprature=0.3"])
    assert result.exit_code == 2
    assert "generate.temprature: unknown key; did you mean 'temperature'?" in result.output
    assert "Traceback" not in result.output


def test_bench_judge_reference_only_is_right_on_every_labelled_step(tmp_path):
    out = tmp_path / "judge.json"
    result = CliRunner().invoke(main, ["bench", "judge", "--model", "none", "--math", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())
    assert row["judge"] == "reference" and row["n"] == 2 * 6 + 8 * 6  # 6 labelled steps per problem
    assert row["accuracy"] == 1.0 and row["good_rate"] == 0.5


def test_bench_rollout_arch_gemma3_reuses_caches_and_repeats_its_trajectories(tmp_path, monkeypatch):
    """--arch builds a random-weight Gemma 3 (here at the tiny size, to stay fast) and the hf
    engine reuses each row's cache across steps without changing a trajectory."""
    from swirl_lite import architectures

    monkeypatch.setitem(architectures._SHAPES["gemma-3-1b"], "bench", architectures._SHAPES["gemma-3-1b"]["tiny"])
    out = tmp_path / "rollout.json"
    result = CliRunner().invoke(main, [
        "bench", "rollout", "--arch", "gemma3", "--set", "generate.demonstrations=1", "--questions", "3",
        "--batch", "3", "--max-steps", "2", "--max-new-tokens", "6", "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    numbers = json.loads(out.read_text())
    assert numbers["arch"] == "gemma3" and numbers["kv_reuse"] is True and numbers["reused_prompt_tokens"] > 0
    assert numbers["identical_trajectories"] == 3 and numbers["batch_3"]["trajectories"] == 3


def test_bench_train_one_run_reports_whether_states_were_shared(tmp_path, tiny_gemma_dir):
    runs = {}
    for mode in ("per-row", "policy-only"):
        out = tmp_path / f"{mode}.json"
        result = CliRunner().invoke(main, ["bench", "train", "--one", mode, "--model", tiny_gemma_dir,
                                           "--steps", "1", "--json", str(out)])
        assert result.exit_code == 0, result.output
        runs[mode] = json.loads(out.read_text())
    assert runs["per-row"]["shared_states"] is False and runs["policy-only"]["shared_states"] is True
    assert all(r["samples_per_s"] > 0 and r["steps"] == 1 for r in runs.values())


def test_bench_rollout_compares_lockstep_plain_generate_and_a_server(tmp_path, tiny_model_dir):
    from openai_stub import serve

    out = tmp_path / "rollout.json"
    with serve() as url:  # answers "<answer>4</answer>" to everything
        result = CliRunner().invoke(main, [
            "bench", "rollout", "--set", f"model.name={tiny_model_dir}", "--set", "generate.demonstrations=0",
            "--questions", "3", "--batch", "3", "--max-steps", "2", "--max-new-tokens", "5",
            "--compare-openai", url, "--openai-model", "m", "--json", str(out),
        ])
    assert result.exit_code == 0, result.output
    numbers = json.loads(out.read_text())
    assert numbers["identical_to_lockstep"] == 3 and numbers["lockstep_batch_3"]["trajectories"] == 3
    assert numbers["whole_turns_identical_to_lockstep"] == 3 and numbers["whole_turns_vs_lockstep"] > 0
    assert numbers["plain_generate"]["tokens"] == 3 * 5 and numbers["plain_generate"]["tokens_per_s"] > 0
    server = numbers["openai"]
    assert server["streams"]["trajectories"] == server["lockstep"]["trajectories"] == 3
    assert server["streams"]["tokens"] == 3 * 2  # the stub's usage: 2 completion tokens, one answer each
    long = [line for line in result.output.splitlines() if len(line) > 80 and "it/s]" not in line]  # ours, not tqdm's
    assert not long, long


def _bench(tmp_path, *args: str):
    """`swirl-lite bench ARGS --json FILE`: its output and the numbers it wrote (it must succeed)."""
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", *args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    return result, json.loads(out.read_text())


def test_bench_train_settled_times_both_cases_with_the_same_gradient(tmp_path, tiny_model_dir):
    result, numbers = _bench(tmp_path, "train", "--settled", "--model", tiny_model_dir, "--demonstrations", "0")
    assert set(numbers["seconds"]) == {"none", "first state"} and all(s > 0 for s in numbers["seconds"].values())
    assert numbers["same_gradient"] is True and numbers["states"] == 2 and numbers["generations"] == 8
    assert "same LoRA gradients: yes" in " ".join(result.output.split())


def test_bench_train_loss_times_four_ways_and_says_how_their_gradients_differ(tmp_path, tiny_model_dir):
    result, numbers = _bench(tmp_path, "train", "--loss", "--model", tiny_model_dir, "--demonstrations", "0")
    assert list(numbers["seconds"]) == ["one batch", "length runs", "no state gradient", "+ sampled states"]
    assert all(s > 0 for s in numbers["seconds"].values()) and numbers["ratio"]["one batch"] == 1.0
    assert numbers["runs_vs_one_batch_max_rel_diff"] < 1e-4  # float rounding, not another gradient
    assert 0 < numbers["cosine_exact_vs_no_state_gradient"] < 0.99999  # an approximation, not the same
    assert numbers["sampled_states_same_gradient"] is True and numbers["long"] == 48
    assert "sampled states: the same gradient" in " ".join(result.output.split())
    assert all(len(line) <= 80 for line in result.output.splitlines())


def test_bench_train_sampling_times_both_paths_with_the_same_greedy_tokens(tmp_path, tiny_model_dir):
    result, numbers = _bench(tmp_path, "train", "--sampling", "--model", tiny_model_dir, "--states", "3",
                             "--demonstrations", "0")
    assert set(numbers["seconds"]) == {"one call per state", "one call for all"}
    assert all(s > 0 for s in numbers["seconds"].values()) and numbers["ratio"] > 0
    assert numbers["same_greedy_tokens"] is True and numbers["states"] == 3 and numbers["generations"] == 8
    assert "the same greedy tokens: yes" in " ".join(result.output.split())


def test_bench_linear_times_each_shape_and_decodes_the_same_tokens(tmp_path, tiny_model_dir):
    result, numbers = _bench(tmp_path, "linear", "--model", tiny_model_dir, "--rows", "1,16", "--tokens", "4")
    used = {(r["shape"], r["rows"]): r["used"] for r in numbers["layers"]}
    # only the large output layer swaps, and it takes the transposed form at 16 rows, not at 1
    assert used[("49152x64", 16)] and not used[("49152x64", 1)] and not used[("64x64", 16)]
    assert {r["rows"] for r in numbers["layers"]} == {1, 16} and all(r["max_diff"] < 1e-4 for r in numbers["layers"])
    assert all(r["plain_ms"] > 0 and r["few_ms"] > 0 for r in numbers["layers"])
    assert set(numbers["seconds"]) == {"F.linear", "few-row"} and numbers["same_greedy_tokens"] is True
    assert "the same greedy tokens: yes" in " ".join(result.output.split())


def test_bench_linear_rejects_bad_rows_in_one_line():
    for rows, said in (("0,x", "give positive row counts"), ("", "give at least one row count")):
        result = CliRunner().invoke(main, ["bench", "linear", "--rows", rows])
        assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output
