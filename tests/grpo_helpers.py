"""A LoRA policy with TRL's fused LM head and a GRPO batch of grouped actions, for the tests that
check `training/shared_prompt.py` against TRL's per-row path."""

from __future__ import annotations


def lora_with_fused_head(model_dir: str, temperature: float):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from swirl_lite.compat import ensure_trl_logprobs

    ensure_trl_logprobs()  # TRL < 1.16 on CPU: no Triton kernel
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
    add_fused_lm_head(base, temperature=temperature, outputs=("log_probs", "entropy"))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    for name, p in model.named_parameters():  # LoRA B starts at zero: give the adapter a real effect
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    return model


def grpo_batch(tok, prompts=None, actions=None):
    """Two states (left-padded to one width) x 3 actions each, right-padded, in mixed order."""
    import torch

    prompts = prompts or ["Question: Ana has 3 bags of 4 apples. How many?", "Question: 2+2?"]
    actions = actions or ["<math_exp>3 * 4</math_exp>", "<answer>12</answer>", "I think", "<answer>4</answer>",
                          "<math_exp>2 + 2</math_exp>", "4"]
    owner = [0, 0, 1, 1, 0, 1]
    p = tok(prompts, padding=True, padding_side="left", return_tensors="pt")
    c = tok(actions, padding=True, padding_side="right", add_special_tokens=False, return_tensors="pt")
    ids = torch.cat([p["input_ids"][owner], c["input_ids"]], dim=1)
    mask = torch.cat([p["attention_mask"][owner], c["attention_mask"]], dim=1)
    return ids, mask, c["input_ids"].size(1), c["attention_mask"]
