"""unsloth is imported before transformers, trl and peft whenever it is used.

A fake `unsloth` package (first on sys.path in a fresh interpreter) records which of those modules
were already imported when it was, then loads the tiny model with plain transformers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

FAKE_UNSLOTH = '''
import json, os, sys

with open(os.environ["FAKE_UNSLOTH_RECORD"], "w") as f:
    json.dump(sorted(m for m in ("transformers", "trl", "peft") if m in sys.modules), f)


class FastLanguageModel:
    @staticmethod
    def from_pretrained(model_name, max_seq_length=None, load_in_4bit=False, dtype=None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        return AutoModelForCausalLM.from_pretrained(model_name), AutoTokenizer.from_pretrained(model_name)

    @staticmethod
    def for_inference(model):
        return model
'''


def _run(tmp_path: Path, code: str) -> tuple[list[str], str]:
    fake = tmp_path / "fake"
    (fake / "unsloth").mkdir(parents=True)
    (fake / "unsloth" / "__init__.py").write_text(FAKE_UNSLOTH)
    record = tmp_path / "record.json"
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "FAKE_UNSLOTH_RECORD": str(record),
           "PYTHONPATH": os.pathsep.join([str(fake), str(repo), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert record.is_file(), "unsloth was never imported"
    return json.loads(record.read_text()), out.stdout


def test_generate_stage_imports_unsloth_first(tmp_path, tiny_model_dir):
    """The generate stage builds its backend with make_llm, which used to import backends.hf
    (a transformers subclass) before load_model imported unsloth."""
    before, stdout = _run(tmp_path, f"""
        from swirl_lite.config import build_recipe
        from swirl_lite.runs import RunDir
        from swirl_lite.stages import generate

        recipe = build_recipe({{
            "model": {{"name": {tiny_model_dir!r}, "backend": "unsloth"}},
            "data": {{"task": "arithmetic", "limit": 1}},
            "generate": {{"samples_per_question": 1, "max_new_tokens": 8, "max_steps": 1, "demonstrations": 0}},
            "output": {{"dir": {str(tmp_path)!r}, "name": "order"}},
        }})
        print(generate.run(recipe, RunDir.for_recipe(recipe))["trajectories"])
    """)
    assert before == []
    assert stdout.strip().endswith("1")
