"""The bench group: every benchmark under `swirl-lite bench`; rollout honours --set without --recipe."""

from __future__ import annotations

import json

from click.testing import CliRunner

from swirl_lite.cli import main


def test_bench_group_lists_every_benchmark():
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == {"tools", "rollout", "judge", "train", "gpu"}


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
