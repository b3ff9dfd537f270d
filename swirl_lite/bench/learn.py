"""The learning check: does step-wise RL raise the reward of freshly sampled actions on held-out states?

    OMP_NUM_THREADS=1 swirl-lite bench train --learn [--steps 8] [--seed 0] [--reward format|reference]

States are first steps (s_0) of the built-in `arithmetic` task: train states from its train split,
held-out states from its validation split. Before training, the base policy samples `samples`
actions per held-out state and the reward scores them; then the train stage runs step-wise RL on
the train states; then the trained adapter samples again on the same held-out states, same seed.

Reward: `format` (default) is 1 for one well-formed action tag: the embedded 135M model emits one
in roughly a third of its turns, so there is signal to learn from within minutes on a CPU. The
`reference` judge (gold intermediate values) is the stricter option; the 135M model rarely hits
gold values, so expect little movement from it in a short run.

It trains through the train stage's `train` function (imported inside `learning_check`): bench is
the top layer, the one place besides the pipeline that may call a stage.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from swirl_lite.config import Recipe, build_recipe
from swirl_lite.runs import RunDir
from swirl_lite.schema import SubTrajectory, write_jsonl


def first_states(split: str, n: int, demonstrations: int = 1) -> list[dict]:
    """`n` s_0 states of the arithmetic task as filter-stage rows (completion = the gold first step)."""
    from swirl_lite.tasks import get_task

    task = get_task("arithmetic")
    rows = []
    for ex in task.load(split, limit=n):
        steps = list(ex.meta.get("steps") or [])
        sub = SubTrajectory(
            id=f"{ex.id}#0/0", trajectory_id=f"{ex.id}#0", question_id=ex.id, step=0, kind="math_exp",
            prompt=task.prompt(ex, task.max_steps, demonstrations=demonstrations),
            completion=[{"role": "assistant", "content": f"<math_exp>{steps[0] if steps else ex.answer}</math_exp>"}],
            task="arithmetic", outcome=True, gold=ex.answer, meta=dict(ex.meta),
        )
        rows.append({**asdict(sub), "verdict": {"label": "GOOD", "score": 1.0}})
    return rows


def make_scorer(name: str):
    from swirl_lite.judges.reference import ReferenceJudge
    from swirl_lite.training.reward import FormatReward

    if name == "format":
        return FormatReward()
    if name == "reference":
        return ReferenceJudge(kind="math")
    raise ValueError(f"--reward: {name!r} is not one of format, reference")


def mean_reward(loaded, rows: list[dict], scorer, samples: int, recipe: Recipe, seed: int) -> dict:
    """Sample `samples` actions per state (training temperature, cut at the action tag) and score them."""
    import torch

    from swirl_lite.actions import STOP_STRINGS
    from swirl_lite.training.reward import action_shares

    tok, model = loaded.tokenizer, loaded.model
    texts = [tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False) for r in rows]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(seed)
    model.eval()
    with torch.no_grad():
        out = model.generate(
            **enc, do_sample=True, temperature=recipe.train.temperature, top_p=1.0,
            max_new_tokens=recipe.train.max_completion_length, num_return_sequences=samples,
            stop_strings=list(STOP_STRINGS), tokenizer=tok, pad_token_id=tok.pad_token_id,
        )
    actions = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    subs = []
    for i, action in enumerate(actions):
        base = SubTrajectory.from_dict({k: v for k, v in rows[i // samples].items() if k != "verdict"})
        base.id, base.completion = f"{base.id}~{i}", [{"role": "assistant", "content": action}]
        subs.append(base)
    scores = [v.score for v in scorer.score(subs)]
    return {"reward": sum(scores) / len(scores), "n": len(scores), **action_shares(actions)}


def learning_check(
    model: str = "embedded", steps: int = 8, seed: int = 0, reward: str = "format",
    n_train: int = 16, n_eval: int = 8, samples: int = 4, workdir: str | None = None,
) -> dict:
    """Held-out mean reward before and after `steps` RL steps; returns both and the settings."""
    from swirl_lite.models import load_model
    from swirl_lite.stages.train import train

    root = Path(workdir or tempfile.mkdtemp(prefix="swirl-learn-"))
    recipe = build_recipe({
        "model": {"name": model},
        # Sized for a shared 2-core CPU: one state x 4 actions per step, no recomputation, and no
        # KL term (beta 0 skips the reference forward pass; the stage's default is 0.04).
        "train": {"max_steps": steps, "per_device_batch_size": 4, "num_generations": 4,
                  "learning_rate": 1e-3, "warmup_ratio": 0.0, "lr_scheduler": "constant",
                  "max_completion_length": 40, "temperature": 0.9, "beta": 0.0, "seed": seed,
                  "logging_steps": 1, "save_steps": steps, "gradient_checkpointing": False},
        "output": {"dir": str(root), "name": f"learn-{reward}-{seed}"},
    })
    run = RunDir.for_recipe(recipe)
    run.forget("train")
    write_jsonl(run / "filter" / "kept-00000.jsonl", first_states("train", n_train))
    held_out = first_states("validation", n_eval)
    scorer = make_scorer(reward)

    base = load_model(recipe.model)
    before = mean_reward(base, held_out, scorer, samples, recipe, seed)
    del base
    started = time.time()
    summary = train(recipe, run, scorer=scorer)
    trained_cfg = recipe.model.model_copy(update={"adapter": str(run / "train" / "adapter")})
    after = mean_reward(load_model(trained_cfg), held_out, scorer, samples, recipe, seed)
    return {
        "seed": seed, "reward": reward, "model": model, "steps": summary["steps"],
        "train_states": n_train, "held_out_states": n_eval, "samples_per_state": samples,
        "before": before, "after": after, "train_seconds": round(time.time() - started, 1),
        "run_dir": str(run.path),
    }


def learn(model: str, steps: int, seed: int, reward: str) -> dict:
    """Run the learning check and print its before/after table and verdict."""
    from swirl_lite.console import console, summary_table

    result = learning_check(model=model, steps=steps, seed=seed, reward=reward)
    b, a = result["before"], result["after"]
    rows = [(name, b[key], a[key]) for name, key in (("mean reward", "reward"), ("valid share", "actions/valid"),
                                                     ("tool-call share", "actions/tool_call"),
                                                     ("answer share", "actions/answer"))]
    console.print(summary_table(
        f"learning check: {reward} reward, {result['held_out_states']} held-out states x "
        f"{result['samples_per_state']} samples, seed {seed}, {result['steps']} steps",
        rows, ("", "before", "after"),
    ))
    better = a["reward"] > b["reward"]
    console.print(f"{'[green]improved[/]' if better else '[red]did not improve[/]'}: "
                  f"{b['reward']:.3f} -> {a['reward']:.3f} (train {result['train_seconds']} s; run {result['run_dir']})")
    return result
