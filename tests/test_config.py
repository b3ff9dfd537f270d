"""Recipes: validation errors name the key, overrides reach the resolved recipe, every recipe validates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from swirl_lite.cli import main
from swirl_lite.config import RecipeError, build_recipe, load_recipe, recipe_to_yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))


def test_recipes_exist():
    assert RECIPES, "no recipes found under recipes/"


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_recipe_validates(path):
    """As `swirl-lite validate` checks it (the schema, then the task it names), named after its file
    unless it sets output.name, and opening with the header that says what it is and how to run it."""
    from swirl_lite.tasks import get_task

    recipe = load_recipe(path)
    raw = yaml.safe_load(path.read_text())
    assert recipe.output.name == (raw.get("output") or {}).get("name", path.stem)
    assert get_task(recipe.data).name == recipe.data.task
    header = path.read_text().splitlines()[:6]
    assert header[0].startswith(f"# {path.stem}: ")
    assert any(f"swirl-lite run {path.relative_to(ROOT)}" in line for line in header)


def test_paper_defaults():
    recipe = build_recipe({})
    assert recipe.generate.samples_per_question == 5
    assert recipe.filter.strategy == "process"
    assert recipe.eval.n_questions == 300


def _write(tmp_path, data) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_misspelt_key_names_key_and_suggests(tmp_path):
    path = _write(tmp_path, {"generate": {"temprature": 0.5}})
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert len(exc.value.errors) == 1
    line = exc.value.errors[0]
    assert "generate.temprature" in line and "temperature" in line and str(path) in line
    assert "\n" not in line


def test_wrong_type_names_key(tmp_path):
    path = _write(tmp_path, {"generate": {"batch_size": "lots"}})
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert exc.value.errors[0].startswith(f"{path}: generate.batch_size")


def test_all_errors_at_once(tmp_path):
    path = _write(tmp_path, {"generate": {"batch_size": "x"}, "filter": {"strategy": "best"}, "modle": {}})
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    text = "\n".join(exc.value.errors)
    assert len(exc.value.errors) == 3
    assert "generate.batch_size" in text and "filter.strategy" in text and "did you mean 'model'" in text


def test_impossible_combination(tmp_path):
    path = _write(tmp_path, {"generate": {"backend": "openai"}})
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert any("generate.openai.base_url" in e for e in exc.value.errors)


def test_set_overrides_reach_resolved_recipe(tmp_path):
    path = _write(tmp_path, {"generate": {"temperature": 0.5}})
    recipe = load_recipe(path, ["generate.temperature=0.25", "model.lora.r=4", "tools.use=[calculator]"])
    assert recipe.generate.temperature == 0.25
    assert recipe.model.lora.r == 4
    assert recipe.tools.use == ["calculator"]
    assert "temperature: 0.25" in recipe_to_yaml(recipe)


def test_set_unknown_key_is_an_error(tmp_path):
    path = _write(tmp_path, {})
    with pytest.raises(RecipeError) as exc:
        load_recipe(path, ["generate.tempreture=1"])
    assert "generate.tempreture" in exc.value.errors[0]


def test_validate_command_prints_one_line_errors(tmp_path):
    path = _write(tmp_path, {"judge": {"mdoe": "logprob"}})
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "judge.mdoe" in result.output and "Traceback" not in result.output


def test_validate_command_asks_the_task_what_it_accepts(tmp_path):
    path = _write(tmp_path, {"data": {"task": "hotpotqa", "demonstrations_from": "similar"}})
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "data.demonstrations_from" in result.output and "ok" not in result.output


def test_validate_command_ok(tmp_path):
    path = _write(tmp_path, {"data": {"task": "gsm8k"}})
    result = CliRunner().invoke(main, ["validate", str(path), "--set", "generate.seed=3"])
    assert result.exit_code == 0, result.output
    assert "seed: 3" in result.output


def test_bad_yaml_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert "not valid YAML" in exc.value.errors[0]


def test_group_size_is_checked_for_rl_only(tmp_path):
    """num_generations bounds GRPO's batch; SFT samples nothing, so a small SFT batch is valid."""
    small = {"per_device_batch_size": 2, "num_generations": 8}
    with pytest.raises(RecipeError) as exc:
        load_recipe(_write(tmp_path, {"train": {**small, "method": "swirl"}}))
    assert any("train.num_generations" in e for e in exc.value.errors)
    assert load_recipe(_write(tmp_path, {"train": {**small, "method": "sft"}})).train.per_device_batch_size == 2


def test_a_generated_task_refuses_a_dataset(tmp_path):
    """arithmetic and multihop generate their questions: a dataset setting would be silently ignored."""
    from swirl_lite.config import GENERATED_TASKS
    from swirl_lite.tasks import TASKS, get_task

    assert {n for n, cls in TASKS.items() if n != "custom" and get_task(n).source() == "generated"} == set(
        GENERATED_TASKS
    )
    data = {"task": "arithmetic", "path": "train.jsonl", "config_name": "main"}
    with pytest.raises(RecipeError) as exc:
        load_recipe(_write(tmp_path, {"data": data, "eval": {"path": "test.jsonl"}}))
    assert sorted(e.split(": ")[1] for e in exc.value.errors) == ["data.config_name", "data.path", "eval.path"]
    assert "task 'arithmetic' generates its questions" in exc.value.errors[0]
    other = {"data": {"task": "gsm8k"}, "eval": {"tasks": ["gsm8k", "multihop"], "task_paths": {"multihop": "q.json"}}}
    with pytest.raises(RecipeError) as exc:
        load_recipe(_write(tmp_path, other))
    assert [e.split(": ")[1] for e in exc.value.errors] == ["eval.task_paths.multihop"]
    assert load_recipe(_write(tmp_path, {"data": {"task": "multihop"}})).data.path is None
