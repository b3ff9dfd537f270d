"""`swirl-lite plan RECIPE --gpu CARD`: tokens, wall time and peak memory of each stage, before
anything runs. Arithmetic on the recipe and the card, not a measurement; no model is loaded.

Time, per forward pass of the model (the same formula for every stage):
- a decode step (one new token for each row of a batch) reads every weight and each row's KV cache
  once: max(bytes / bandwidth, FLOPs / throughput), over the card's efficiency, plus a fixed cost
  per layer (kernel launches and Python). bitsandbytes dequantises each NF4 weight to the compute
  dtype for a batched matmul, so a 4-bit body moves 0.5 + 2 x dtype bytes per parameter, not 0.5.
- prefill and training are compute-bound: 2 FLOPs per matmul parameter and token (plus attention),
  x2 for LoRA training (forward, and the backward to the activations; the frozen base gets no
  weight gradient), +1 forward when gradient checkpointing recomputes, +1 for the KL reference.
Tokens: the recipe's counts (questions, samples, step caps, max_new_tokens, batch sizes, steps,
num_generations) and per-task lengths (`TASKS`; instructions, demonstrations, question, tool result,
mean steps and action length). Rollouts run in lockstep by default: a round lasts until its longest
turn, so it costs max_new_tokens decode steps whatever the mean action length (`rollout.py`).
On a GPU the plan takes the unsloth path the notebook installs: no KV caches across rollout steps
(each round re-feeds whole chats) and every sampled action's state run in training.
Memory: `memory_estimate.stage_memory` at the recipe's limits, the figure `doctor` prints (the
honest bound: the rollout ends a chat at `max_seq_length`), and at the predicted lengths beside it.
The CPU card is calibrated on this project's measured CPU runs (`CALIBRATION`); the GPU cards'
efficiencies are assumptions until `swirl-lite bench gpu` has measured them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from swirl_lite.config import Recipe
from swirl_lite.errors import UsageError
from swirl_lite.memory_estimate import ModelShape, model_shape, stage_memory


@dataclass(frozen=True)
class Card:
    name: str
    capability: tuple[int, int] | None  # None: no CUDA (precision.choose picks float32)
    memory_gb: float  # what one process can use
    bandwidth_gbs: float
    tflops16: float  # dense fp16/bf16 tensor-core throughput
    tflops32: float
    bf16: bool  # native bf16 (a T4 has none: precision.py)
    decode_eff: float  # share of bandwidth / throughput a batched decode step reaches
    compute_eff: float  # share of throughput prefill and training reach
    layer_s: float  # fixed seconds per layer per forward pass
    load_s: float  # loading the model, once per stage that uses it


# Spec sheets (NVIDIA datasheets: T4, L4, A100 40 GB, RTX 4090); efficiencies and per-layer costs are
# assumptions for eager PyTorch + bitsandbytes (~15 kernels a layer at ~20 us each), not measured.
# load_s: a 1B 4-bit model from the hub cache (the first download of ~2.5 GB adds about a minute).
_GPU = dict(decode_eff=0.5, compute_eff=0.35, layer_s=3e-4, load_s=60.0)
# The one measurement so far (`swirl-lite bench gpu`, an H200, torch 2.11 + transformers 5.17 +
# bitsandbytes 0.50.2, no unsloth): a decode step of random-weight Gemma 3 1B in 4-bit took 137-195 ms
# at batch 32 through the hf backend and ~155 ms at batch 4 in training's sampling (with LoRA), whatever
# the batch: ~5.5 ms per layer per pass, 18x the assumption. Not yet profiled (the check's `decode` step
# now is), so the plan keeps its assumption and prints the time at the measured cost beside it.
MEASURED_LAYER_S = 5.5e-3
CARDS = {
    "t4": Card("T4", (7, 5), 15.0, 320, 65, 8.1, False, **_GPU),
    "l4": Card("L4", (8, 9), 22.5, 300, 121, 30.3, True, **_GPU),
    "a100": Card("A100", (8, 0), 40.0, 1555, 312, 19.5, True, **_GPU),
    "4090": Card("RTX 4090", (8, 9), 24.0, 1008, 165, 82.6, True, **_GPU),
    # This machine: 2 cores, 24 GiB, fp32. Effective figures (efficiency 1) fitted to CALIBRATION.
    "cpu": Card("CPU (2 cores)", None, 24.0, 24, 0.10, 0.10, False, 0.3, 1.0, 2e-4, 5.0),
}

# Measured CPU wall times this card is fitted to (seconds; `tests/test_plan.py` holds the plan to
# 30% of each). quickstart: README "Quickstart", commit 9d93f26, `/usr/bin/time -v swirl-lite run
# recipes/quickstart.yaml` = 3 min 37 s, generate "about a minute", train 106 s (8 GRPO steps).
# learn-cpu: README "Learn on CPU", commit ff41121: generate 6 min 15 s, train 26.1 min (80 steps,
# ~19.6 s each), evaluate ~5 min, ~37.5 min in all.
CALIBRATION = {
    "quickstart": {"generate": 60.0, "train": 106.0, "total": 217.0},
    "learn-cpu": {"generate": 375.0, "train": 1566.0, "evaluate": 300.0, "total": 2250.0},
}
# The settings each measured run had, where the recipe file has changed since (`--set` overrides on
# the recipe as it is now): the quickstart was measured with one written demonstration, no filter,
# 8 GRPO steps of 1 state and 24 evaluation questions; learn-cpu with no filter and 48 questions.
CALIBRATION_SETTINGS = {
    "learn-cpu": ("filter.strategy=none", "filter.unit=trajectory", "eval.seed=0", "eval.n_questions=48"),
    "quickstart": (
        "data.limit=16", "data.demonstrations_from=builtin", "generate.demonstrations=1",
        "generate.batch_size=32", "generate.max_new_tokens=48", "filter.strategy=none",
        "filter.unit=trajectory", "train.max_steps=8", "train.per_device_batch_size=8",
        "train.gradient_accumulation_steps=1", "train.num_generations=8", "eval.n_questions=24",
        "eval.batch_size=24", "eval.max_steps=5",
    ),
}


@dataclass(frozen=True)
class TaskTokens:
    instructions: int  # tokens of the instructions and chat markup
    demo: int  # one demonstration trajectory
    question: int
    result: int  # a tool result turn (or a format reminder) and its markup
    steps: float  # mean steps per trajectory, before the step cap
    action: int  # mean tokens of one action, before max_new_tokens
    source: str
    questions: int  # train questions when data.limit is unset


# arithmetic: measured on a run of recipes/quickstart.yaml (output.name qs-check, 2026-12-01: its
# generate and split files), tokenised with the embedded model's tokenizer: first state 392-397 tokens with 1 demonstration (instructions ~240, a demonstration
# ~115, a question ~40), a step grows the state by 74 tokens (action 32 + result/reminder 42),
# 2.59 steps per trajectory, 2,652 tokens for 83 actions. multihop: README "Learn to search on CPU"
# (states 808 tokens, actions 28, 3.75 steps on the smoke run). gsm8k / hotpotqa / musique: not
# measured; by text length (~4 characters a token): GSM8K needs 2-8 steps (METHOD.md §1), results
# are a line; a search result is up to search_max_chars (600, ~150 tokens). `questions`: the train
# split's size (arithmetic's generator default, multihop's world, the datasets' published splits).
TASKS = {
    "arithmetic": TaskTokens(240, 115, 40, 42, 2.6, 32, "measured on a quickstart run", 1000),
    "gsm8k": TaskTokens(240, 260, 60, 25, 4.5, 80, "estimated", 7473),
    "hotpotqa": TaskTokens(260, 480, 30, 160, 3.5, 60, "estimated", 90447),
    "musique": TaskTokens(260, 560, 30, 160, 4.0, 60, "estimated", 19938),
    "multihop": TaskTokens(260, 250, 30, 90, 3.75, 28, "README smoke run", 384),
}
KIND_DEFAULT = {"math": "gsm8k", "qa": "hotpotqa"}
TASK_CAP = {"arithmetic": 10, "gsm8k": 10, "hotpotqa": 5, "musique": 5, "multihop": 5}


@dataclass
class StagePlan:
    stage: str
    tokens: int  # tokens through the model: prefilled + decoded (+ trained)
    decoded: int  # tokens sampled
    seconds: float
    peak_gb: float  # at the recipe's limits (the doctor's figure)
    expected_gb: float  # at the predicted lengths


@dataclass
class Plan:
    recipe: str
    card: Card
    dtype: str
    stages: list[StagePlan]
    worst_seconds: float  # every trajectory to its step cap, every action at max_new_tokens
    measured_seconds: float | None  # GPU: the total at MEASURED_LAYER_S; None on the CPU card
    assumptions: list[tuple[str, str]]

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def peak_gb(self) -> float:
        return max(s.peak_gb for s in self.stages)

    @property
    def fits(self) -> bool:
        return self.peak_gb <= self.card.memory_gb

    def to_json(self) -> dict:
        return {
            "recipe": self.recipe, "card": self.card.name, "dtype": self.dtype,
            "total_hours": round(self.total_seconds / 3600, 3),
            "worst_case_hours": round(self.worst_seconds / 3600, 3),
            "at_measured_layer_cost_hours": None if self.measured_seconds is None
            else round(self.measured_seconds / 3600, 3),
            "peak_vram_gb": round(self.peak_gb, 2), "card_memory_gb": self.card.memory_gb, "fits": self.fits,
            "stages": {s.stage: {"tokens": s.tokens, "decoded_tokens": s.decoded, "seconds": round(s.seconds, 1),
                                 "hours": round(s.seconds / 3600, 3), "peak_vram_gb": round(s.peak_gb, 2),
                                 "expected_vram_gb": round(s.expected_gb, 2)} for s in self.stages},
            "assumptions": dict(self.assumptions), "card_figures": asdict(self.card),
        }


class _Cost:
    """Seconds of forward passes of one model on one card, in one dtype."""

    def __init__(self, shape: ModelShape, card: Card, dtype_bytes: int, load_in_4bit: bool):
        self.shape, self.card, self.b = shape, card, dtype_bytes
        head = shape.vocab * shape.hidden
        self.matmul = shape.params - shape.embedding + head  # parameters multiplied per token
        body = shape.params - shape.embedding
        per_param = 0.5 * 1.03 + 2 * dtype_bytes if load_in_4bit else dtype_bytes
        self.weight_bytes = body * per_param + shape.embedding * dtype_bytes
        self.flops = (card.tflops32 if dtype_bytes == 4 else card.tflops16) * 1e12
        self.kv_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * dtype_bytes

    def token_flops(self, context: float) -> float:
        s = self.shape
        return 2 * self.matmul + 4 * s.layers * s.heads * s.head_dim * context

    def decode(self, forwards: float, rows: float, context: float) -> float:
        """`forwards` decode steps, each for `rows` rows attending to `context` tokens."""
        c = self.card
        read = (self.weight_bytes + rows * context * self.kv_token) / (c.bandwidth_gbs * 1e9)
        compute = rows * self.token_flops(context) / self.flops
        return forwards * (max(read, compute) / c.decode_eff + self.shape.layers * c.layer_s)

    def prefill(self, tokens: float, context: float, passes: float = 1.0) -> float:
        """`tokens` run through the model `passes` times (2: forward + backward), in large batches."""
        return passes * tokens * self.token_flops(context) / (self.flops * self.card.compute_eff)


def task_tokens(recipe: Recipe) -> tuple[str, TaskTokens, int]:
    """(task name, its lengths, its default step cap); a custom task takes its kind's."""
    task = recipe.data.task
    if task not in TASKS:
        task = KIND_DEFAULT["qa" if recipe.data.kind == "qa" else "math"]
    return task, TASKS[task], TASK_CAP[task]


def uses_unsloth(recipe: Recipe, card: Card) -> bool:
    """What `model.backend: auto` takes on a GPU once unsloth is installed (the notebook installs
    it): no KV caches across rollout steps, and every sampled action carries its state in training."""
    return card.capability is not None and recipe.model.backend != "hf"


def shares_states(recipe: Recipe, card: Card) -> bool:
    """Whether training runs each state once for its actions (`train.share_prompt`, plain
    transformers only; unsloth and TRL's per-row path run every action's state)."""
    return recipe.train.share_prompt and not uses_unsloth(recipe, card)


def demonstrations(recipe: Recipe, shape: ModelShape) -> int:
    """`generate.demonstrations`, else by model size as `backends.params_count_demos` does."""
    n = recipe.generate.demonstrations
    return n if n is not None else (2 if shape.params < 1e9 else 1 if shape.params < 4e9 else 0)


def _rollout(cost: _Cost, t: TaskTokens, n: int, batch: int, cap: int, max_new: int, chunk: int,
             prompt: float, cached: float | None) -> tuple[int, int, float]:
    """(tokens, decoded, seconds) of `n` trajectories in batches of `batch`, `cached` tokens of
    each prompt shared by the whole batch (the prefix cache; None: no caches at all, unsloth)."""
    steps = min(t.steps, cap)
    action = min(t.action, max_new)
    turns = n * steps
    rounds = math.ceil(turns / batch) + (cap - steps)  # the tail: the last rows run to their cap
    rows = turns / rounds
    forwards = rounds * max_new if chunk == 0 else turns * action / batch + (cap - steps) * action
    # A round feeds every row as many new tokens as its widest new part ([padding][cached][padding]
    # [new], backends/hf.py): the last action's tail and a result. A trajectory joining the batch
    # runs its uncached prompt through the model first, with the others joining then
    # (`HFLLM._prefill`), so nobody is padded to it.
    turn = t.result + action
    if cached is None:  # every round re-feeds every row's whole chat, padded to the longest
        prefilled = rounds * rows * (prompt + steps * turn)
    elif chunk == 0:
        prefilled = n * (prompt - cached) + (rounds - 1) * rows * turn
    else:
        prefilled = n * (prompt - cached) + turns * turn
    prefilled += math.ceil(n / batch) * (cached or 0)
    context = prompt + steps / 2 * turn
    seconds = cost.decode(forwards, rows, context) + cost.prefill(prefilled, context)
    return int(prefilled + turns * action), int(turns * action), seconds


def _stages(recipe: Recipe, cost: _Cost, t: TaskTokens, cap: int, demos: int) -> list[tuple[str, int, int, float]]:
    g, j, tr, ev, card = recipe.generate, recipe.judge, recipe.train, recipe.eval, cost.card
    prompt = t.instructions + demos * t.demo + t.question
    n = (recipe.data.limit or t.questions) * g.samples_per_question
    # builtin demonstrations: the instructions and demonstrations are one prefix for the batch;
    # demonstrations picked per question share only the instructions.
    cached = prompt - t.question if recipe.data.demonstrations_from == "builtin" else t.instructions
    if uses_unsloth(recipe, card):
        cached = None  # backends/__init__.py: no prefix or row cache on unsloth-patched models
    gen = _rollout(cost, t, n, g.batch_size, g.max_steps or cap, g.max_new_tokens, g.chunk_tokens, prompt, cached)
    steps = min(t.steps, g.max_steps or cap)
    state = min(prompt + (steps - 1) / 2 * (t.action + t.result), tr.max_prompt_length)
    states = n * steps
    stages = [("generate", *gen[:2], card.load_s + gen[2])]
    if "process" in recipe.filter.strategy and j.kind != "reference":
        judged = states * (state + t.action + 150)  # the judge's criteria add ~150 tokens
        sec = card.load_s + cost.prefill(judged, state)
        if j.mode == "generate":
            sec += cost.decode(math.ceil(states / j.batch_size) * j.max_new_tokens, j.batch_size, state)
        stages.append(("filter", int(judged), 0, sec))
    else:  # no judge model: the reference judge or the grader, seconds of CPU
        stages.append(("filter", 0, 0, 2.0))
    stages.append(("train", *_train(recipe, cost, t, state)))
    models = 2 + len(ev.adapters)  # base, the trained adapter, extra adapters
    tasks = max(1, len(ev.tasks))
    m = ev.n_questions * tasks
    e = _rollout(cost, t, m, ev.batch_size, ev.max_steps or cap, g.max_new_tokens, g.chunk_tokens, prompt, cached)
    stages.append(("evaluate", models * e[0], models * e[1], models * (card.load_s + e[2])))
    return stages


def _train(recipe: Recipe, cost: _Cost, t: TaskTokens, state: float) -> tuple[int, int, float]:
    tr, card = recipe.train, cost.card
    completions = tr.per_device_batch_size * tr.gradient_accumulation_steps
    if tr.method == "sft":
        tokens = tr.max_steps * completions * (state + t.action)
        return int(tokens), 0, card.load_s + cost.prefill(tokens, state, 2 + tr.gradient_checkpointing)
    states = completions / tr.num_generations
    action = tr.max_completion_length  # sampled in lockstep and padded to the longest
    shared = shares_states(recipe, card)
    state_rows = states if shared else completions
    sample = cost.prefill(state_rows * state, state) + tr.gradient_accumulation_steps * cost.decode(
        action, tr.per_device_batch_size, state)
    # train.state_gradient false: the loss reads each state's keys and values from sampling and
    # runs only the actions (training/shared_prompt.py)
    trained = (state_rows * state if tr.state_gradient or not shared else 0) + completions * action
    # Shared states under checkpointing recompute their forward passes (training/shared_prompt.py):
    # not counted, since the CPU figures were fitted on runs from before it, and on the quickstart
    # it cost ~7% a step, within the noise of that (loaded) measurement (README, Quickstart).
    passes = 2 + (tr.gradient_checkpointing and not shared) + (tr.beta > 0)
    loss = cost.prefill(trained, state, passes)
    reward = 0.0 if recipe.judge.kind == "reference" else cost.prefill(completions * (state + action + 150), state)
    per_step = sample + loss + reward
    return int(tr.max_steps * (trained + state_rows * state)), int(tr.max_steps * completions * action), \
        card.load_s + tr.max_steps * per_step


def predict(recipe: Recipe, card_name: str, name: str = "recipe") -> Plan:
    """The plan of `recipe` on card `card_name` (a key of CARDS); UsageError when it cannot run there."""
    from swirl_lite.precision import choose

    card = CARDS[card_name]
    if recipe.model.dtype == "bfloat16" and not card.bf16:
        raise UsageError(f"model.dtype: a {card.name} has no native bfloat16 (emulated and slow; unsloth refuses a "
                         "bf16 trainer there); set model.dtype: auto (float16, Gemma 3 float32) or float16")
    shape = model_shape(recipe.model.name)
    if shape is None:
        raise UsageError(f"model.name: {recipe.model.name!r} is not a known model size; point it at a local folder "
                         "with a config.json to plan for it")
    dtype = choose(recipe.model, card.capability).dtype
    b = 4 if dtype == "float32" else 2
    cost = _Cost(shape, card, b, recipe.model.load_in_4bit)
    task, t, cap = task_tokens(recipe)
    demos = demonstrations(recipe, shape)
    rows = _stages(recipe, cost, t, cap, demos)
    worst_t = replace(t, steps=recipe.generate.max_steps or cap, action=recipe.generate.max_new_tokens)
    worst = sum(r[3] for r in _stages(recipe, cost, worst_t, cap, demos))
    longest = int(t.instructions + demos * t.demo + t.question + min(t.steps, recipe.generate.max_steps or cap)
                  * (min(t.action, recipe.generate.max_new_tokens) + t.result))
    limits = stage_memory(recipe, b) or []
    expected = stage_memory(recipe, b, seq=longest) or []
    stages = [StagePlan(stage, tokens, decoded, seconds, lim.total, exp.total)
              for (stage, tokens, decoded, seconds), lim, exp in zip(rows, limits, expected, strict=True)]
    measured = None
    if card.capability is not None:
        slow = _Cost(shape, replace(card, layer_s=MEASURED_LAYER_S), b, recipe.model.load_in_4bit)
        measured = sum(r[3] for r in _stages(recipe, slow, t, cap, demos))
    return Plan(name, card, dtype, stages, worst, measured,
                _assumptions(recipe, card, dtype, task, t, demos, longest))


def _assumptions(recipe: Recipe, card: Card, dtype: str, task: str, t: TaskTokens, demos: int,
                 longest: int) -> list[tuple[str, str]]:
    tflops = card.tflops32 if dtype == "float32" else card.tflops16
    shared = shares_states(recipe, card)
    return [
        ("card", f"{card.name}: {card.memory_gb:g} GiB, {card.bandwidth_gbs:g} GB/s, {tflops:g} TFLOPS in {dtype}"
                 f"{'' if card.bf16 or card.capability is None else ', no bf16'}"),
        ("efficiency", f"decode {card.decode_eff:.0%} of bandwidth, prefill/train {card.compute_eff:.0%} of "
                       f"FLOPS, {card.layer_s * 1e3:g} ms per layer per pass"
                       + (" (fitted to measured CPU runs)" if card.capability is None else " (assumed)")),
        ("task lengths", f"{task} ({t.source}): instructions {t.instructions}, demonstration {t.demo} x {demos}, "
                         f"question {t.question}, result {t.result} tokens"),
        ("questions", f"{recipe.data.limit or t.questions} x {recipe.generate.samples_per_question} samples"
                      + ("" if recipe.data.limit else " (data.limit unset: the whole train split)")
                      + ("" if recipe.data.task in TASKS else f"; a custom task, costed as {task}")),
        ("rollouts", f"{t.steps:g} steps of {t.action} tokens per trajectory (caps: steps "
                     f"{recipe.generate.max_steps or TASK_CAP.get(task, 10)}, {recipe.generate.max_new_tokens} "
                     "tokens); "
                     + ("lockstep: a round costs max_new_tokens" if recipe.generate.chunk_tokens == 0
                        else f"rounds of {recipe.generate.chunk_tokens} tokens")),
        ("backend", ("unsloth (model.backend auto, installed): every rollout round re-feeds whole chats "
                     "(no KV caches); " if uses_unsloth(recipe, card) else "hf: prefix and row KV caches; ")
                    + ("each train state once for its actions" if shared else "every action carries its state")),
        ("judge", "reference (gold steps): no model" if recipe.judge.kind == "reference"
                  else f"{recipe.judge.kind}, costed as the policy's size ({recipe.judge.model})"),
        ("memory", f"doctor's figure at the limits (max_seq_length {recipe.model.max_seq_length}, the hf "
                   f"backend's caches: more than unsloth keeps); expected: at {longest} tokens"),
    ]


def card_for(capability: tuple[int, int] | None | str, device_name: str = "") -> str:
    """The CARDS key for a device: by name when it is one of them, else by compute capability."""
    name = device_name.lower()
    for key in ("t4", "l4", "a100", "4090"):
        if key in name:
            return key
    if capability is None or capability == "detect":
        return "cpu"
    return "t4" if capability < (8, 0) else "a100" if capability == (8, 0) else "l4"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def print_plan(plan: Plan) -> None:
    """The stage table and the assumptions, each within 80 columns, through the console."""
    from swirl_lite.console import console, summary_table

    rows = [(s.stage, f"{s.tokens:,}", f"{s.decoded:,}", hours(s.seconds), f"{s.peak_gb:.1f}",
             f"{s.expected_gb:.1f}") for s in plan.stages]
    rows.append(("total", f"{sum(s.tokens for s in plan.stages):,}", f"{sum(s.decoded for s in plan.stages):,}",
                 hours(plan.total_seconds), f"{plan.peak_gb:.1f}", f"{max(s.expected_gb for s in plan.stages):.1f}"))
    title = f"plan (predicted): {plan.recipe}, {plan.card.name}, {plan.dtype}"
    console.print(summary_table(title, rows, ("stage", "tokens", "sampled", "time", "peak GiB", "expected GiB")))
    fit = "fits" if plan.fits else "does NOT fit"
    rows = [*plan.assumptions, ("worst case", f"{hours(plan.worst_seconds)} (every trajectory to its step cap, "
                                              "every action at max_new_tokens)"),
            *([("measured cost", f"{hours(plan.measured_seconds)} at {MEASURED_LAYER_S * 1e3:g} ms per layer per "
                                 "pass, what one H200 measured (hf backend, 4-bit; README)")]
              if plan.measured_seconds is not None else []),
            ("verdict", f"{hours(plan.total_seconds)}; peak {plan.peak_gb:.1f} GiB {fit} in {plan.card.memory_gb:g} GiB")]
    console.print(summary_table("assumptions", rows, ("", ""), numeric=False))


__all__ = ["CALIBRATION", "CALIBRATION_SETTINGS", "CARDS", "Plan", "StagePlan", "card_for", "predict", "print_plan"]
