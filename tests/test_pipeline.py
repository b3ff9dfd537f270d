"""The run directory and manifest: finished stages are skipped, --force and --from redo them."""

from __future__ import annotations

import types

import pytest

from swirl_lite import pipeline
from swirl_lite.config import build_recipe
from swirl_lite.runs import RunDir


@pytest.fixture
def fake_stages(monkeypatch):
    calls: list[str] = []

    def fake_import(name: str):
        stage = name.rsplit(".", 1)[-1]

        def run(recipe, run_dir):
            calls.append(stage)
            (run_dir / stage).write_text(f"{stage} output {len(calls)}")
            return {"n": len(calls)}

        return types.SimpleNamespace(run=run)

    monkeypatch.setattr(pipeline.importlib, "import_module", fake_import)
    monkeypatch.setattr(pipeline, "available_stages", lambda: ["generate", "split", "filter"])
    return calls


def _run_dir(tmp_path) -> tuple:
    recipe = build_recipe({"output": {"dir": str(tmp_path), "name": "t"}})
    return recipe, RunDir.for_recipe(recipe)


def test_resolved_recipe_saved(tmp_path):
    recipe, run = _run_dir(tmp_path)
    assert (tmp_path / "t" / "recipe.yaml").read_text().startswith("model:")
    assert run.path == tmp_path / "t"


def test_finished_stage_skipped_then_forced(tmp_path, fake_stages):
    recipe, run = _run_dir(tmp_path)
    pipeline.run_pipeline(recipe, run)
    assert fake_stages == ["generate", "split", "filter"]
    assert set(run.manifest()["stages"]) == {"generate", "split", "filter"}
    pipeline.run_pipeline(recipe, run)
    assert fake_stages == ["generate", "split", "filter"], "finished stages must be skipped"
    pipeline.run_pipeline(recipe, run, force=True)
    assert fake_stages[3:] == ["generate", "split", "filter"]


def test_from_stage_redoes_it_and_later(tmp_path, fake_stages):
    recipe, run = _run_dir(tmp_path)
    pipeline.run_pipeline(recipe, run)
    pipeline.run_pipeline(recipe, run, from_stage="split")
    assert fake_stages == ["generate", "split", "filter", "split", "filter"]


def test_forget_removes_output(tmp_path, fake_stages):
    recipe, run = _run_dir(tmp_path)
    pipeline.run_stage("generate", recipe, run)
    assert (run / "generate").exists() and run.is_done("generate")
    run.forget("generate")
    assert not (run / "generate").exists() and not run.is_done("generate")


def test_unknown_from_stage(tmp_path, fake_stages):
    recipe, run = _run_dir(tmp_path)
    with pytest.raises(ValueError, match="not a stage"):
        pipeline.run_pipeline(recipe, run, from_stage="train")


def test_a_changed_recipe_redoes_the_stages_that_read_it(tmp_path, fake_stages, capsys):
    recipe, run = _run_dir(tmp_path)
    pipeline.run_pipeline(recipe, run)
    hotter = build_recipe({"output": {"dir": str(tmp_path), "name": "t"}, "filter": {"threshold": 0.7}})
    pipeline.run_pipeline(hotter, run)
    assert fake_stages == ["generate", "split", "filter", "filter"], "generate and split did not read filter"
    assert "filter.threshold 0.5 -> 0.7" in capsys.readouterr().out
    colder = build_recipe({"output": {"dir": str(tmp_path), "name": "t"}, "filter": {"threshold": 0.7},
                           "generate": {"temperature": 0.1}})
    pipeline.run_pipeline(colder, run)
    assert fake_stages[4:] == ["generate", "split", "filter"], "a generate change redoes everything after it"
    pipeline.run_pipeline(colder.model_copy(update={"output": hotter.output}), run)
    assert len(fake_stages) == 7, "the same settings again: nothing to redo"


def test_partial_output_from_other_settings_is_not_resumed(tmp_path, fake_stages):
    recipe, run = _run_dir(tmp_path)
    run.mark_started("generate", pipeline.stage_inputs("generate", recipe))
    (run / "generate").mkdir()
    (run / "generate" / "shard-00000.jsonl").write_text("half of a crashed run")  # the fake stage writes a file here
    other = build_recipe({"output": {"dir": str(tmp_path), "name": "t"}, "generate": {"temperature": 0.1}})
    pipeline.run_stage("generate", other, run)
    assert (run / "generate").read_text() == "generate output 1"
    assert "started" not in run.manifest() or "generate" not in run.manifest()["started"]
    assert run.manifest()["stages"]["generate"]["inputs"]["generate.temperature"] == 0.1


def test_more_adapters_to_evaluate_redo_nothing():
    base = build_recipe({})
    more = build_recipe({"eval": {"adapters": ["runs/x/train/adapter"]}})
    assert pipeline.stage_inputs("evaluate", base) == pipeline.stage_inputs("evaluate", more)
    assert pipeline.stage_inputs("evaluate", base) != pipeline.stage_inputs("evaluate", build_recipe({"eval": {"n_questions": 7}}))


def test_each_stage_records_its_wall_time_and_peak_memory(tmp_path, monkeypatch):
    # A stage that holds 600 MB for a moment: its peak RSS is seen by the sampler though it is freed
    # before the stage returns (the manifest's figure is the stage's own peak, not the process's).
    import sys
    import time

    def fake_import(name: str):
        def run(recipe, run_dir):
            if name.endswith("split"):
                block = bytearray(600 * 1024**2)
                block[::4096] = b"x" * len(block[::4096])  # touch every page
                time.sleep(0.5)
                del block
            else:
                time.sleep(0.05)
            return {}

        return types.SimpleNamespace(run=run)

    monkeypatch.setattr(pipeline.importlib, "import_module", fake_import)
    monkeypatch.setattr(pipeline, "available_stages", lambda: ["generate", "split"])
    recipe, run = _run_dir(tmp_path)
    pipeline.run_pipeline(recipe, run)
    stages = run.manifest()["stages"]
    assert stages["split"]["wall_s"] >= 0.5 and stages["generate"]["wall_s"] < stages["split"]["wall_s"]
    if sys.platform.startswith("linux"):
        assert stages["split"]["peak_rss_gb"] >= stages["generate"]["peak_rss_gb"] + 0.5


def test_a_setting_added_by_a_newer_version_does_not_redo_a_stage():
    # A manifest written before `generate.openai.send_seed` existed: same settings otherwise.
    old = {"generate.temperature": 0.7, "generate.openai": {"base_url": None, "concurrency": 16}}
    new = {"generate.temperature": 0.7, "generate.openai": {"base_url": None, "concurrency": 16, "send_seed": True},
           "generate.chunk_tokens": 0}
    assert pipeline.changed_settings(old, new) == []
    new["generate.openai"]["concurrency"] = 8
    assert pipeline.changed_settings(old, new) == [
        "generate.openai {'base_url': None, 'concurrency': 16} -> "
        "{'base_url': None, 'concurrency': 8, 'send_seed': True}"]
