"""`swirl-lite sweep`: one run per (variant, training seed), generation shared, gains over seeds."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from swirl_lite import pipeline
from swirl_lite.cli import main
from swirl_lite.config import RecipeError, build_recipe, load_recipe
from swirl_lite.sweep import parse_variant, summarize, sweep

# trained right per (filter strategy, seed), of 10; base gets 3 right
TRAINED = {("none", 0): 8, ("none", 1): 5, ("process", 0): 4, ("process", 1): 3}


@pytest.fixture
def fake_stages(monkeypatch):
    """Stages that record who ran them; evaluate writes the base result (unless there) and metrics."""
    calls: list[tuple[str, str]] = []

    def fake_import(name: str):
        stage = name.rsplit(".", 1)[-1]

        def run(recipe, run_dir):
            calls.append((stage, run_dir.path.name))
            if stage != "evaluate":
                (run_dir / stage).mkdir(exist_ok=True)
                (run_dir / stage / "out.jsonl").write_text(f"{stage} of {run_dir.path.name}\n")
                return {}
            base = run_dir / "evaluate" / "base" / "arithmetic.jsonl"
            if not base.exists():
                calls.append(("evaluate base", run_dir.path.name))
                base.parent.mkdir(parents=True)
                base.write_text("{}\n")
            right = TRAINED[recipe.filter.strategy, recipe.train.seed]
            metrics = {
                "results": [{"model": "base", "task": "arithmetic", "correct": 3, "n": 10},
                            {"model": "swirl", "task": "arithmetic", "correct": right, "n": 10}],
                "comparisons": [{"model": "swirl", "task": "arithmetic", "accuracy_diff": (right - 3) / 10,
                                 "mcnemar_p": 0.03 if right - 3 >= 5 else 0.5}],
            }
            (run_dir / "metrics.json").write_text(json.dumps(metrics))
            return {}

        return types.SimpleNamespace(run=run)

    monkeypatch.setattr(pipeline.importlib, "import_module", fake_import)
    return calls


def _recipe(tmp_path, **generate):
    return build_recipe({"data": {"task": "arithmetic"}, "generate": generate,
                         "output": {"dir": str(tmp_path), "name": "exp"}})


def test_runs_share_one_generation_and_one_base_evaluation(tmp_path, fake_stages):
    variants = [parse_variant("none: filter.strategy=none"), parse_variant("process: filter.strategy=process")]
    table = sweep(_recipe(tmp_path), variants, [0, 1], lock=False)
    names = ["exp-none-s0", "exp-none-s1", "exp-process-s0", "exp-process-s1"]
    assert [r["run"] for r in table["runs"]] == names
    assert [c for c in fake_stages if c[0] in ("generate", "split", "evaluate base")] == [
        ("generate", "exp-none-s0"), ("split", "exp-none-s0"), ("evaluate base", "exp-none-s0")]
    assert [c[1] for c in fake_stages if c[0] == "train"] == names  # every run trains its own
    for name in names[1:]:  # the copies are the first run's output, marked as such in the manifest
        assert (tmp_path / name / "generate" / "out.jsonl").read_text() == "generate of exp-none-s0\n"
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())["stages"]
        assert manifest["split"]["copied_from"] == "exp-none-s0"
    seeds = [load_recipe(tmp_path / n / "recipe.yaml") for n in names]
    assert [r.train.seed for r in seeds] == [0, 1, 0, 1]
    assert [r.filter.strategy for r in seeds] == ["none", "none", "process", "process"]
    assert [(r["gain_pts"], r["trained"]) for r in table["runs"]] == [(50.0, "8/10"), (20.0, "5/10"),
                                                                    (10.0, "4/10"), (0.0, "3/10")]
    assert table["variants"] == [
        {"variant": "none", "seeds": 2, "mean_gain_pts": 35.0, "min_gain_pts": 20.0, "max_gain_pts": 50.0,
         "significant_gains": 1, "significant_losses": 0},
        {"variant": "process", "seeds": 2, "mean_gain_pts": 5.0, "min_gain_pts": 0.0, "max_gain_pts": 10.0,
         "significant_gains": 0, "significant_losses": 0}]
    assert json.loads((tmp_path / "exp-sweep.json").read_text()) == table
    # a rerun resumes: nothing runs again
    before = len(fake_stages)
    sweep(_recipe(tmp_path), variants, [0, 1], lock=False)
    assert len(fake_stages) == before


def test_a_later_sweep_reuses_what_an_earlier_one_finished(tmp_path, fake_stages):
    """Separate invocations (more seeds later, or one sweep per core side by side) share one
    generation and one base evaluation through output.dir."""
    sweep(_recipe(tmp_path), [parse_variant("none: filter.strategy=none")], [0], lock=False)
    del fake_stages[:]
    table = sweep(_recipe(tmp_path), [parse_variant("process: filter.strategy=process")], [1], lock=False)
    assert [c[0] for c in fake_stages] == ["filter", "train", "evaluate"]  # no generate, split, base
    manifest = json.loads((tmp_path / "exp-process-s1" / "manifest.json").read_text())["stages"]
    assert manifest["generate"]["copied_from"] == manifest["split"]["copied_from"] == "exp-none-s0"
    assert table["runs"][0]["trained"] == "3/10"
    # the file keeps the earlier sweep's run beside this one's, and summarises both
    recorded = json.loads((tmp_path / "exp-sweep.json").read_text())
    assert [r["run"] for r in recorded["runs"]] == ["exp-none-s0", "exp-process-s1"]
    assert [v["variant"] for v in recorded["variants"]] == ["none", "process"]
    sweep(_recipe(tmp_path), [parse_variant("process: filter.strategy=process")], [1], lock=False)
    recorded = json.loads((tmp_path / "exp-sweep.json").read_text())  # a rerun replaces its own entry
    assert [r["run"] for r in recorded["runs"]] == ["exp-none-s0", "exp-process-s1"]


def test_only_finished_stages_of_another_run_are_copied(tmp_path, fake_stages):
    sweep(_recipe(tmp_path), [parse_variant("none: filter.strategy=none")], [0], lock=False)
    first = tmp_path / "exp-none-s0"
    manifest = json.loads((first / "manifest.json").read_text())
    del manifest["stages"]["split"]  # as if that run were still splitting and evaluating the base
    (first / "manifest.json").write_text(json.dumps(manifest))
    base = first / "evaluate" / "base" / "arithmetic.jsonl"
    base.rename(base.with_name(".arithmetic.partial.jsonl"))
    del fake_stages[:]
    sweep(_recipe(tmp_path), [parse_variant("none: filter.strategy=none")], [1], lock=False)
    assert [c[0] for c in fake_stages] == ["split", "filter", "train", "evaluate", "evaluate base"]


def test_a_variant_with_other_generation_settings_generates_its_own(tmp_path, fake_stages):
    variants = [parse_variant("none: filter.strategy=none"),
                parse_variant("hot: filter.strategy=none generate.temperature=1.1")]
    sweep(_recipe(tmp_path), variants, [0], lock=False)
    assert [c for c in fake_stages if c[0] in ("generate", "evaluate base")] == [
        ("generate", "exp-none-s0"), ("evaluate base", "exp-none-s0"),
        ("generate", "exp-hot-s0"), ("evaluate base", "exp-hot-s0")]


def test_bad_variants_and_seeds_are_one_line_each(tmp_path):
    with pytest.raises(RecipeError, match="NAME: key=value"):
        parse_variant("no colon here")
    with pytest.raises(RecipeError, match="is not key=value"):
        parse_variant("x: filter.strategy")
    quickstart = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
    result = CliRunner().invoke(main, ["sweep", str(quickstart), "--seeds", "0,x",
                                       "--set", f"output.dir={tmp_path}"])
    assert result.exit_code == 2 and "--seeds '0,x': write distinct integers" in result.output
    assert not any(tmp_path.iterdir())  # nothing written before the sweep could start


def test_summarize_skips_runs_without_a_result():
    rows = [{"variant": "a", "seed": 0, "gain_pts": 10.0, "mcnemar_p": 0.01}, {"variant": "a", "seed": 1}]
    assert summarize(rows) == [{"variant": "a", "seeds": 1, "mean_gain_pts": 10.0, "min_gain_pts": 10.0,
                                "max_gain_pts": 10.0, "significant_gains": 1, "significant_losses": 0}]


def test_a_significant_loss_is_counted_as_a_loss_not_a_success():
    rows = [{"variant": "a", "seed": s, "gain_pts": g, "mcnemar_p": p}
            for s, (g, p) in enumerate([(27.1, 4e-5), (-17.7, 0.0015), (16.7, 0.0037), (5.0, 0.4)])]
    (v,) = summarize(rows)
    assert (v["significant_gains"], v["significant_losses"], v["seeds"]) == (2, 1, 4)
